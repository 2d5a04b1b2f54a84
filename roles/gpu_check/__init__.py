"""Check a deployed host's GPU path end to end (``bin/gpu-check``): a throwaway server on the GPU profile,
started through the hub's API, computes on its GPU; the check says which link broke when one did (driver,
hub, image, runtime, device, compute). It changes nothing that stays."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files

from jupyterhub_gpu import remote
from jupyterhub_gpu.settings import GPU_CHECK_USER
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import PACKAGE_DIR

# The hub service whose token may start and stop the servers of this user, and nothing else.
SERVICE = "jupyterhub-gpu-check"
USER = GPU_CHECK_USER
SCOPES = [f"servers!user={USER}", f"read:users!user={USER}"]


class GPUCheckFailed(RuntimeError):
    pass


def _run(state, host, script: str) -> bool:
    """Run the check and show its findings; a failed check fails the operation with its own words, not a
    traceback."""
    ok, output = remote.run(state, host, StringCommand("docker", "exec", "-i", "jupyterhub", "python3", "-", "<",
                                                       QuoteString(script)), _timeout=1200)
    for line in output.stdout_lines:
        host.log(line, log_func=logger.error if line.startswith("FAILED") else logger.info)
    if not ok and not any(line.startswith("FAILED") for line in output.stdout_lines):
        for line in output.stderr_lines:
            host.log(line, log_func=logger.error)
    return ok


@operation()
def gpu_path_checked(script: str):
    """The GPU check, run in the hub's container; its findings in the output, a failure as an error."""
    yield FunctionCommand(_run, (script,), {})


@deploy("GPU check")
def check_gpu_path(target: Target) -> None:
    if not target.gpu_pool:
        raise GPUCheckFailed(f"{host.name}: FAILED at driver: the host has no GPU to hand out "
                             f"({target.gpus.error or 'nvidia-smi lists none'}); install the NVIDIA driver (on WSL2, "
                             "the Windows one) and deploy again")
    script = f"{target.layout.bin}/gpu_check.py"
    files.directory(name="Check tool directory", path=target.layout.bin, mode="755")
    files.put(name="GPU check", src=str(PACKAGE_DIR / "gpu_check.py"), dest=script, mode="644")
    gpu_path_checked(name="GPU path checked through the hub", script=script)
