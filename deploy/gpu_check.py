"""Check that each host's GPUs work end to end, as a user's notebook meets them.

    bin/gpu-check inventories/local.py        (pyinfra -y inventories/local.py deploy/gpu_check.py)

A throwaway server of the user `gpu-check` starts on the GPU profile through the hub's API, multiplies two
matrices on its GPU and checks the product against the CPU's, and is removed. The output names the GPU and the
time; a failure names the link that broke (driver, hub, image, runtime, device, compute) and exits non-zero.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roles import gpu_check, preflight  # noqa: E402

gpu_check.check_gpu_path(preflight.check())
