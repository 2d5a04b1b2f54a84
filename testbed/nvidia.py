"""A stand-in for NVIDIA's container runtime hook (see README.md here, "GPU device requests without a GPU").

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

# The driver's nvidia-smi as the deploy queries it, for two stand-in GPUs.
FAKE_GPUS = [
    ("0", "GPU-0a0a0a0a-0000-4000-8000-000000000000", "Stand-in GPU", 16384),
    ("1", "GPU-1b1b1b1b-1111-4111-8111-111111111111", "Stand-in GPU", 16384),
]
FAKE_NVIDIA_SMI = "#!/bin/sh\n# Test bed stand-in for the NVIDIA driver's nvidia-smi.\ncase \"$*\" in\n" + (
    "  *--query-gpu=*) cat <<EOF\n"
    + "".join(f"{index}, {uuid}, {name}, {memory}\n" for index, uuid, name, memory in FAKE_GPUS)
    + "EOF\n  ;;\n  *) cat <<EOF\n"
    + "".join(f"GPU {index}: {name} (UUID: {uuid})\n" for index, uuid, name, _ in FAKE_GPUS)
    + "EOF\n  ;;\nesac\n"
)
