"""A stand-in for NVIDIA's driver and container runtime hook (see README.md here, "GPU device requests without a GPU").

dockerd registers its `nvidia` device driver only if an executable named
nvidia-container-runtime-hook is on its PATH when it starts. The stand-in hook reads the OCI state
that dockerd hands it, so GPU device requests (`--gpus device=1`) take Docker's real path: the
request is recorded in the container's HostConfig and the container gets NVIDIA_VISIBLE_DEVICES for
the devices it asked for. Like the real hook, it mounts the host's nvidia-smi into a container that
asks for the driver's utilities (the `utility` capability, as the hub's GPU sampler does by name),
in the container's mount namespace before the container starts. No GPU is touched.

The stand-in nvidia-smi reports the GPUs below, with the utilisation and memory in use that a test
writes for each into /var/lib/nvidia-standin/<index> ("<percent> <MiB>"; 0 and 0 without one): the
figures of the GPUs' work, which the host and every container given its nvidia-smi read alike.
"""

from pathlib import Path

HOOK_NAME = "nvidia-container-runtime-hook"
FIGURES_DIR = "/var/lib/nvidia-standin"
STUB = r"""#!/bin/sh
# Test bed stand-in for the NVIDIA hook: accept the prestart call; give a container that asks for the
# driver's utilities the host's nvidia-smi and the stand-in GPUs' figures. No device is touched.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
state=$(cat)
[ "${1:-}" = prestart ] || exit 0
pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
bundle=$(printf '%s' "$state" | sed -n 's/.*"bundle": *"\([^"]*\)".*/\1/p')
config="$bundle/config.json"
[ -n "$pid" ] && [ -r "$config" ] || exit 0
grep -Eq '"NVIDIA_DRIVER_CAPABILITIES=[^"]*(utility|all)' "$config" || exit 0
smi=$(command -v nvidia-smi || true)
[ -n "$smi" ] || [ ! -x /usr/lib/wsl/lib/nvidia-smi ] || smi=/usr/lib/wsl/lib/nvidia-smi
[ -n "$smi" ] || exit 0
root=$(sed -n 's/.*"root": *{[^}]*"path": *"\([^"]*\)".*/\1/p' "$config")
case "$root" in /*) ;; *) root="$bundle/$root" ;; esac
mkdir -p """ + FIGURES_DIR + r"""
# In the container's mount namespace, before it pivots into its root: where the real hook mounts the driver.
nsenter -t "$pid" -m sh -c '
  mkdir -p "$1/usr/bin" "$1$3" && touch "$1/usr/bin/nvidia-smi" &&
    mount --bind "$2" "$1/usr/bin/nvidia-smi" && mount --bind "$3" "$1$3"
' sh "$root" "$smi" """ + FIGURES_DIR + r""" >&2 || echo "stand-in hook: nvidia-smi not given to the container" >&2
exit 0
"""


def stub_dir(root: Path) -> Path:
    """A directory holding only the stub, to put first on a dockerd's PATH."""
    directory = root / "nvidia-stub"
    directory.mkdir(parents=True, exist_ok=True)
    hook = directory / HOOK_NAME
    if not hook.exists() or hook.read_text() != STUB:
        hook.write_text(STUB)
        hook.chmod(0o755)
    return directory


# The driver's GPUs: index, UUID, name, memory (MiB).
FAKE_GPUS = [
    ("0", "GPU-0a0a0a0a-0000-4000-8000-000000000000", "Stand-in GPU", 16384),
    ("1", "GPU-1b1b1b1b-1111-4111-8111-111111111111", "Stand-in GPU", 16384),
]


def fake_gpus(count: int) -> list[tuple[str, str, str, int]]:
    """``count`` stand-in GPUs, the two above first."""
    extra = [(str(i), f"GPU-{i:08x}-{i:04x}-4{i:03x}-8{i:03x}-{i:012x}", "Stand-in GPU", 16384) for i in range(2,
                                                                                                               count)]
    return (FAKE_GPUS + extra)[:count]


def fake_nvidia_smi(gpus=FAKE_GPUS) -> str:
    """The driver's nvidia-smi as the deploy and the sampler use it: ``-L``, and ``--query-gpu`` with the fields
    asked for, once or every ``-l`` seconds (CSV, figures without units)."""
    table = "".join(f"{index} {uuid} {memory}\n" for index, uuid, _, memory in gpus)
    return r"""#!/bin/sh
# Test bed stand-in for the NVIDIA driver's nvidia-smi.
figures=${NVIDIA_STANDIN_FIGURES:-""" + FIGURES_DIR + r"""}
gpus='""" + table + r"""'
query="" loop=""
while [ $# -gt 0 ]; do
  case "$1" in
    --query-gpu=*) query=${1#--query-gpu=} ;;
    -l|--loop) loop=$2; shift ;;
    --loop=*) loop=${1#--loop=} ;;
  esac
  shift
done
if [ -z "$query" ]; then
  printf '%s' "$gpus" | while read -r index uuid memory; do echo "GPU $index: Stand-in GPU (UUID: $uuid)"; done
  exit 0
fi
report() {
  printf '%s' "$gpus" | while read -r index uuid memory; do
    util=0 used=0
    [ ! -r "$figures/$index" ] || read -r util used < "$figures/$index" || true
    line=""
    for field in $(printf '%s' "$query" | tr ',' ' '); do
      case "$field" in
        index) value=$index ;; uuid|gpu_uuid) value=$uuid ;; name|gpu_name) value="Stand-in GPU" ;;
        memory.total) value=$memory ;; memory.used) value=$used ;; utilization.gpu) value=$util ;;
        *) value="[N/A]" ;;
      esac
      line="${line:+$line, }$value"
    done
    echo "$line"
  done
}
report
while [ -n "$loop" ]; do sleep "$loop"; report; done
"""


FAKE_NVIDIA_SMI = fake_nvidia_smi()


def set_gpu_work(container, uuid: str, utilization: int, used_mib: int) -> None:
    """Make the stand-in GPU ``uuid`` of a target (its container) report this utilisation and memory in use."""
    index = next(index for index, known, _, _ in FAKE_GPUS if known == uuid)
    code, output = container.exec_run(["sh", "-c", f'mkdir -p {FIGURES_DIR} && echo "$1 $2" > {FIGURES_DIR}/$0',
                                       index, str(utilization), str(used_mib)])
    assert code == 0, output
