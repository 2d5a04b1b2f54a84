"""What NVIDIA's driver says of a host's GPUs, as the hub hands them out: units of a kind.

A GPU not in MIG mode is one unit of its model's kind; a GPU in MIG mode is handed out only as its MIG devices,
each a unit of the kind "<model> MIG <profile>", never whole. Read from ``nvidia-smi -L`` (models, UUIDs, and each
MIG device's profile and UUID) and ``nvidia-smi -q -x`` (MIG mode, memory of each GPU and MIG device): the XML names
neither a MIG device's UUID nor its profile, and the listing no memory, so both are read and joined by GPU and MIG
device index. The formats, with real outputs, are in ``spawner/tests/fixtures/nvidia-smi``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

_GPU_LINE = re.compile(r"^GPU (?P<index>\d+): (?P<model>.+) \(UUID: (?P<uuid>GPU-[0-9a-fA-F-]+)\)$")
# "  MIG 1g.10gb     Device  0: (UUID: MIG-…)"; before R470 "MIG-GPU-<uuid>/<gi>/<ci>".
_MIG_LINE = re.compile(r"^\s+MIG (?P<profile>\S+)\s+Device\s+(?P<index>\d+): \(UUID: (?P<uuid>MIG-[^)\s]+)\)$")
_PROFILE = re.compile(r"^(?:(?P<c>\d+)c\.)?(?P<g>\d+)g\.(?P<memory>\d+)gb(?P<extra>\+\w+)?$")
# The compute slices of a whole GPU, by model (NVIDIA's MIG User Guide, "Supported GPUs": the largest number of
# instances); every other MIG-capable GPU has seven.
_SLICES = (("RTX PRO 6000", 4), ("RTX PRO 5000", 2), ("RTX PRO 4500", 2), ("A30", 4))


class DriverOutputError(ValueError):
    """nvidia-smi printed something this module cannot read."""


@dataclass(frozen=True)
class Unit:
    """One thing the hub can hand a server: a whole GPU, or one MIG device of a GPU in MIG mode."""

    index: str  # as nvidia-smi numbers it: "1", or "0:2" (GPU 0's MIG device 2)
    uuid: str  # what NVIDIA_VISIBLE_DEVICES names: GPU-<uuid> or MIG-<uuid>
    name: str  # the GPU's product name, "NVIDIA A100-SXM4-80GB"
    memory_mib: int  # its own memory
    profile: str = ""  # a MIG device's profile, "1g.10gb"
    share: float = 1.0  # its part of the GPU's compute (1g of an A100's seven slices: 1/7)
    parent: str = ""  # a MIG device's GPU (GPU-<uuid>)

    @property
    def kind(self) -> str:
        """What people choose between: the model, or a profile of it ("NVIDIA A100-SXM4-80GB MIG 1g.10gb")."""
        return f"{self.name} MIG {self.profile}" if self.profile else self.name

    @property
    def label(self) -> str:
        """The kind in words: "A100-SXM4-80GB", or "MIG 1g.10gb slice of an A100-SXM4-80GB"."""
        model = self.name.removeprefix("NVIDIA ")
        if not self.profile:
            return model
        article = "an" if model[:1].upper() in "AEFHILMNORSX" else "a"
        return f"MIG {self.profile} slice of {article} {model}"


@dataclass(frozen=True)
class ListedGPU:
    index: str
    model: str
    uuid: str
    migs: tuple[tuple[str, str, str], ...] = ()  # (MIG device index, profile, UUID)


def parse_listing(text: str) -> list[ListedGPU]:
    """``nvidia-smi -L``: the GPUs with their MIG devices, in the driver's order."""
    gpus: list[ListedGPU] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        gpu = _GPU_LINE.match(line.rstrip())
        if gpu:
            gpus.append(ListedGPU(gpu["index"], gpu["model"].strip(), gpu["uuid"]))
            continue
        mig = _MIG_LINE.match(line.rstrip())
        if mig and gpus:
            last = gpus[-1]
            gpus[-1] = ListedGPU(last.index, last.model, last.uuid,
                                 last.migs + ((mig["index"], mig["profile"], mig["uuid"]),))
            continue
        raise DriverOutputError(f"nvidia-smi -L printed a line this deploy cannot read: {line.strip()!r}")
    return gpus


@dataclass(frozen=True)
class QueriedGPU:
    uuid: str
    model: str
    mig: bool  # in MIG mode now
    memory_mib: int
    used_mib: int | None  # None where the driver says N/A
    utilization: int | None  # None for a GPU in MIG mode (NVML measures none per MIG device)
    mig_memory: dict[str, tuple[int, int | None]]  # MIG device index: (total, used) MiB


def _mib(text: str | None) -> int | None:
    match = re.match(r"^\s*(\d+)\s*MiB\s*$", text or "")
    return int(match[1]) if match else None


def parse_query(xml: str) -> dict[str, QueriedGPU]:
    """``nvidia-smi -q -x``: each GPU by UUID, with its MIG mode and the memory of it and of its MIG devices."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise DriverOutputError(f"nvidia-smi -q -x printed no XML this deploy can read ({error})") from None
    gpus = {}
    for element in root.findall("gpu"):
        uuid = (element.findtext("uuid") or "").strip()
        migs = {}
        for device in element.findall("mig_devices/mig_device"):
            total = _mib(device.findtext("fb_memory_usage/total"))
            migs[(device.findtext("index") or "").strip()] = (total or 0, _mib(device.findtext("fb_memory_usage/used")))
        util = re.match(r"^\s*(\d+)\s*%", element.findtext("utilization/gpu_util") or "")
        gpus[uuid] = QueriedGPU(
            uuid=uuid, model=(element.findtext("product_name") or "").strip(),
            mig=(element.findtext("mig_mode/current_mig") or "").strip() == "Enabled",
            memory_mib=_mib(element.findtext("fb_memory_usage/total")) or 0,
            used_mib=_mib(element.findtext("fb_memory_usage/used")),
            utilization=int(util[1]) if util else None, mig_memory=migs)
    return gpus


def slices_of(model: str) -> int:
    """The compute slices of a whole ``model`` GPU in MIG mode."""
    return next((count for name, count in _SLICES if name in model), 7)


def share_of(profile: str, model: str, memory_mib: int = 0, gpu_memory_mib: int = 0) -> float:
    """A MIG profile's part of its GPU: its compute slices ("3g") of the model's; where the profile names none
    that this module can read, its memory's part."""
    match = _PROFILE.match(profile)
    if match:
        slices = int(match["c"] or match["g"])
        return round(min(1.0, slices / slices_of(model)), 4)
    if memory_mib and gpu_memory_mib:
        return round(min(1.0, memory_mib / gpu_memory_mib), 4)
    return 1.0


def units(listing: str, query: str) -> list[Unit]:
    """What the hub can hand out on this host: every GPU not in MIG mode, and every MIG device of those in it."""
    listed = parse_listing(listing)
    queried = parse_query(query)
    found = []
    for gpu in listed:
        figures = queried.get(gpu.uuid)
        if figures is None:
            raise DriverOutputError(f"nvidia-smi -q -x says nothing of GPU {gpu.index} ({gpu.uuid}), which -L lists")
        if not figures.mig:
            found.append(Unit(gpu.index, gpu.uuid, gpu.model, figures.memory_mib))
            continue
        for mig_index, profile, uuid in gpu.migs:
            memory = figures.mig_memory.get(mig_index, (0, None))[0]
            found.append(Unit(f"{gpu.index}:{mig_index}", uuid, gpu.model, memory, profile,
                              share_of(profile, gpu.model, memory, figures.memory_mib), gpu.uuid))
    return found


def named(wanted: list[str], found: list[Unit]) -> tuple[list[str], list[str]]:
    """The UUIDs of the units that ``wanted`` names (``gpu_ids`` written by hand: GPU indexes, GPU- and MIG- UUIDs;
    a GPU in MIG mode, named by its index or UUID, is its MIG devices), and the names that name none."""
    chosen, missing = [], []
    for name in wanted:
        hits = [unit.uuid for unit in found if name in (unit.index, unit.uuid)
                or (unit.parent and name in (unit.parent, unit.index.split(":")[0]))]
        if not hits:
            missing.append(name)
        chosen += [uuid for uuid in hits if uuid not in chosen]
    return chosen, missing
