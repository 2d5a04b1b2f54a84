"""Turn the inventory's hosts into JupyterHub servers that give each user a container (and a GPU).

    pyinfra -y inventories/local.py deploy/jupyterhub.py

Every host's inventory data is validated before any host is changed. The last lines of the output say,
for each host, where the hub answers and where its admin passwords and local CA are.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinfra import host, state  # noqa: E402

from jupyterhub_gpu.summary import Summary, say_where_the_hub_is, warn_if_insecure  # noqa: E402
from roles import preflight, provision  # noqa: E402

target = preflight.check()
summary = Summary.for_host(state, host)
warn_if_insecure(summary, target)
say_where_the_hub_is(summary, target, provision(target))
