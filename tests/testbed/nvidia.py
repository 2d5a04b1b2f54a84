"""A stand-in for NVIDIA's container runtime hook (shared/TESTBED.md §6).

dockerd registers its `nvidia` device driver only if an executable named
nvidia-container-runtime-hook is on its PATH when it starts. This stub reads the OCI state
that dockerd hands it and exits 0, so GPU device requests (`--gpus device=1`) take Docker's
real path: the request is recorded in the container's HostConfig and the container gets
NVIDIA_VISIBLE_DEVICES for the devices it asked for. No GPU is touched.
"""

from pathlib import Path

HOOK_NAME = "nvidia-container-runtime-hook"
STUB = "#!/bin/sh\n# Test bed stand-in for the NVIDIA hook: accept the prestart call, touch no device.\ncat >/dev/null\nexit 0\n"


def stub_dir(root: Path) -> Path:
    """A directory holding only the stub, to put first on a dockerd's PATH."""
    directory = root / "nvidia-stub"
    directory.mkdir(parents=True, exist_ok=True)
    hook = directory / HOOK_NAME
    if not hook.exists() or hook.read_text() != STUB:
        hook.write_text(STUB)
        hook.chmod(0o755)
    return directory
