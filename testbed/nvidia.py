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

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StandinMIG:
    """One MIG device of a stand-in GPU in MIG mode, as the driver describes it."""

    profile: str  # "1g.10gb"
    uuid: str  # "MIG-<uuid>"
    gpu_instance: int
    multiprocessors: int
    memory_mib: int


@dataclass(frozen=True)
class StandinGPU:
    index: str
    uuid: str
    name: str
    memory_mib: int
    migs: tuple[StandinMIG, ...] = ()  # in MIG mode where there are any

    @property
    def bus_id(self) -> str:
        return f"00000000:{0x07 + 0x48 * int(self.index):02X}:00.0"


def standin_gpus(gpus) -> list[StandinGPU]:
    """Stand-in GPUs from ``(index, uuid, name, memory)`` tuples (FAKE_GPUS), or as they are."""
    return [gpu if isinstance(gpu, StandinGPU) else StandinGPU(*gpu) for gpu in gpus]


# A lab host with a GPU in MIG mode (one 3g.40gb and two 1g.10gb devices) beside two whole GPUs of another model:
# spawner/tests/fixtures/nvidia-smi/lab-L.txt and lab-q.xml are what the driver prints for these.
LAB_GPUS = [
    StandinGPU("0", "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45", "NVIDIA A100-SXM4-80GB", 81920, (
        StandinMIG("3g.40gb", "MIG-1e099852-3624-56c0-8064-c5db1211e44f", 2, 42, 40192),
        StandinMIG("1g.10gb", "MIG-8243111b-d4c4-587a-a96d-da04583b36e2", 9, 14, 9728),
        StandinMIG("1g.10gb", "MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6", 10, 14, 9728))),
    StandinGPU("1", "GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7", "NVIDIA GeForce RTX 4090", 24564),
    StandinGPU("2", "GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e", "NVIDIA GeForce RTX 4090", 24564),
]


def fake_gpus(count: int) -> list[tuple[str, str, str, int]]:
    """``count`` stand-in GPUs, the two above first."""
    extra = [(str(i), f"GPU-{i:08x}-{i:04x}-4{i:03x}-8{i:03x}-{i:012x}", "Stand-in GPU", 16384)
             for i in range(2, count)]
    return (FAKE_GPUS + extra)[:count]


def listing(gpus) -> str:
    """``nvidia-smi -L`` as the driver prints it: a line per GPU, and under one in MIG mode a line per MIG device
    (the profile padded to 16 characters, the device's index 2 wide)."""
    lines = []
    for gpu in standin_gpus(gpus):
        lines.append(f"GPU {gpu.index}: {gpu.name} (UUID: {gpu.uuid})")
        lines += [f"  {'MIG ' + mig.profile:<16}Device {index:>2}: (UUID: {mig.uuid})"
                  for index, mig in enumerate(gpu.migs)]
    return "\n".join(lines) + "\n"


def _memory(total: int, used: str, reserved: int, indent: str) -> str:
    # The used and free figures are filled in when nvidia-smi runs, from the figures a test wrote.
    return (f"{indent}<fb_memory_usage>\n{indent}\t<total>{total} MiB</total>\n{indent}\t<reserved>{reserved} MiB"
            f"</reserved>\n{indent}\t<used>{used} MiB</used>\n{indent}\t<free>@free:{used}@ MiB</free>\n"
            f"{indent}</fb_memory_usage>\n")


def query_xml(gpus) -> str:
    """``nvidia-smi -q -x`` as the driver prints it (DTD nvsmi_device_v12), with what the deploy and the sampler
    read: each GPU's name, UUID, MIG mode and devices, memory and utilisation; ``@used:<index>@`` and
    ``@util:<index>@`` stand where the running stand-in puts the figures of GPU or MIG device ``<index>``."""
    gpus = standin_gpus(gpus)
    out = ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">', "<nvidia_smi_log>",
           "\t<timestamp>@timestamp@</timestamp>", "\t<driver_version>550.127.05</driver_version>",
           "\t<cuda_version>12.4</cuda_version>", f"\t<attached_gpus>{len(gpus)}</attached_gpus>"]
    for gpu in gpus:
        mode = "Enabled" if gpu.migs else "N/A"
        out += [f'\t<gpu id="{gpu.bus_id}">', f"\t\t<product_name>{gpu.name}</product_name>",
                "\t\t<mig_mode>", f"\t\t\t<current_mig>{mode}</current_mig>",
                f"\t\t\t<pending_mig>{mode}</pending_mig>",
                "\t\t</mig_mode>", "\t\t<mig_devices>"]
        if not gpu.migs:
            out.append("\t\t\tNone")
        for index, mig in enumerate(gpu.migs):
            out += ["\t\t\t<mig_device>", f"\t\t\t\t<index>{index}</index>",
                    f"\t\t\t\t<gpu_instance_id>{mig.gpu_instance}</gpu_instance_id>",
                    "\t\t\t\t<compute_instance_id>0</compute_instance_id>", "\t\t\t\t<device_attributes>",
                    "\t\t\t\t\t<shared>",
                    f"\t\t\t\t\t\t<multiprocessor_count>{mig.multiprocessors}</multiprocessor_count>",
                    "\t\t\t\t\t</shared>", "\t\t\t\t</device_attributes>",
                    _memory(mig.memory_mib, f"@used:{gpu.index}:{index}@", 0, "\t\t\t\t").rstrip("\n"),
                    "\t\t\t</mig_device>"]
        out += ["\t\t</mig_devices>", f"\t\t<uuid>{gpu.uuid}</uuid>",
                _memory(gpu.memory_mib, f"@used:{gpu.index}@", 346, "\t\t").rstrip("\n"),
                "\t\t<utilization>", f"\t\t\t<gpu_util>{'N/A' if gpu.migs else f'@util:{gpu.index}@ %'}</gpu_util>",
                "\t\t</utilization>", "\t</gpu>"]
    return "\n".join(out + ["</nvidia_smi_log>"]) + "\n"


def units_of(gpus) -> list:
    """What the deploy reads from the stand-in driver of ``gpus`` (its -L and -q -x, no work on any GPU): the units
    the hub hands out, with their kinds."""
    from gpudockerspawner.nvidia import units

    idle = re.sub(r"@(used|util):[0-9:]+@", "0", query_xml(gpus)).replace("@timestamp@", "Mon Dec  7 09:12:41 2026")
    return units(listing(gpus), re.sub(r"@free:[^@]*@", "0", idle))


def fake_nvidia_smi(gpus=FAKE_GPUS) -> str:
    """The driver's nvidia-smi as the deploy and the sampler use it: ``-L``, ``-q -x``, and ``--query-gpu`` with the
    fields asked for, once or every ``-l`` seconds (CSV, figures without units). A GPU in MIG mode is listed with its
    MIG devices and reports no utilisation, as the driver's does."""
    gpus = standin_gpus(gpus)
    table = "".join(f"{gpu.index} {gpu.uuid} {gpu.memory_mib} {gpu.name.replace(' ', '_')} {1 if gpu.migs else 0}\n"
                    for gpu in gpus)
    return r"""#!/bin/sh
# Test bed stand-in for the NVIDIA driver's nvidia-smi.
figures=${NVIDIA_STANDIN_FIGURES:-""" + FIGURES_DIR + r"""}
gpus='""" + table + r"""'
query="" loop="" mode=""
while [ $# -gt 0 ]; do
  case "$1" in
    --query-gpu=*) query=${1#--query-gpu=} ;;
    -l|--loop) loop=$2; shift ;;
    --loop=*) loop=${1#--loop=} ;;
    -L|--list-gpus) mode=list ;;
    -q|--query) mode=${mode:-query} ;;
    -x|--xml-format) mode=xml ;;
  esac
  shift
done
if [ "$mode" = xml ]; then
  # Each GPU's and MIG device's figures where a test wrote them ("<percent> <MiB>" in $figures/<index>), else 0.
  script=""
  for file in "$figures"/*; do
    [ -r "$file" ] || continue
    read -r util used < "$file" || true
    name=${file##*/}
    script="$script s/@util:$name@/$util/g; s/@used:$name@/$used/g;"
  done
  script="$script s/@util:[0-9:]*@/0/g; s/@used:[0-9:]*@/0/g; s/@timestamp@/$(date '+%a %b %e %H:%M:%S %Y')/"
  cat <<'XML' | sed "$script" |
""" + query_xml(gpus) + r"""XML
    awk '/<total>/ { total = $0; gsub(/[^0-9]/, "", total) }
         /<reserved>/ { reserved = $0; gsub(/[^0-9]/, "", reserved) }
         /<used>/ { used = $0; gsub(/[^0-9]/, "", used) }
         /@free:/ { sub(/@free:[^@]*@/, total - reserved - used) }
         { print }'
  exit 0
fi
if [ -z "$query" ]; then
  printf '%s' '""" + listing(gpus) + r"""'
  exit 0
fi
report() {
  printf '%s' "$gpus" | while read -r index uuid memory name mig; do
    util=0 used=0
    [ ! -r "$figures/$index" ] || read -r util used < "$figures/$index" || true
    line=""
    for field in $(printf '%s' "$query" | tr ',' ' '); do
      case "$field" in
        index) value=$index ;; uuid|gpu_uuid) value=$uuid ;; name|gpu_name) value=$(echo "$name" | tr _ ' ') ;;
        memory.total) value=$memory ;; memory.used) value=$used ;;
        utilization.gpu) value=$util; [ "$mig" = 0 ] || value="[N/A]" ;;
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
