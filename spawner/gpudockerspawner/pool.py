"""A pool of GPU ids shared by the spawners of one hub process.

Every method is synchronous: in the hub's single asyncio loop a check and the
reservation that follows it cannot be interleaved with another spawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# nvidia-smi's UUIDs: GPU-<uuid> and MIG-<uuid> (or the older MIG-GPU-<uuid>/<gi>/<ci>).
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GPU_ID = re.compile(rf"^(?:[0-9]+|GPU-{_UUID}|MIG-{_UUID}|MIG-GPU-{_UUID}/[0-9]+/[0-9]+)$")


class PoolError(ValueError):
    """A pool definition that cannot be used."""


def parse_gpu_ids(value: str | Iterable[str]) -> list[str]:
    """Accept a list, ``"0,1,2"``, or the legacy one-character-per-GPU form ``"012"``."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if "," in text or " " in text:
            ids = [part.strip() for part in re.split(r"[,\s]+", text) if part.strip()]
        elif text.isdigit():
            ids = list(text)  # legacy "012": one GPU per character
        else:
            ids = [text]
    else:
        ids = [str(part).strip() for part in value]
    bad = [gpu for gpu in ids if not GPU_ID.match(gpu)]
    if bad:
        raise PoolError(
            f"malformed GPU ids {bad}: use device indexes (0, 1, ...) or UUIDs (GPU-..., MIG-...)"
        )
    duplicates = sorted({gpu for gpu in ids if ids.count(gpu) > 1})
    if duplicates:
        raise PoolError(f"GPU ids listed more than once: {duplicates}")
    return ids


class GPUPool:
    """Which owners hold which GPUs, with at most ``users_per_gpu`` owners on each."""

    def __init__(self, ids: Iterable[str], users_per_gpu: int = 1):
        if users_per_gpu < 1:
            raise PoolError(f"users_per_gpu must be at least 1, not {users_per_gpu}")
        self.ids = list(ids)
        self.users_per_gpu = users_per_gpu
        self._holders: dict[str, list[str]] = {gpu: [] for gpu in self.ids}

    def held_by(self, owner: str) -> list[str]:
        return [gpu for gpu in self.ids if owner in self._holders[gpu]]

    def free_slots(self) -> int:
        return sum(self.users_per_gpu - len(owners) for owners in self._holders.values())

    def allocate(self, owner: str, count: int) -> list[str] | None:
        """Reserve ``count`` GPUs for ``owner``, least loaded first, ties in pool order; None if too few."""
        held = self.held_by(owner)
        if held:
            return held
        candidates = [gpu for gpu in self.ids if len(self._holders[gpu]) < self.users_per_gpu]
        if len(candidates) < count:
            return None
        order = {gpu: index for index, gpu in enumerate(self.ids)}
        chosen = sorted(candidates, key=lambda gpu: (len(self._holders[gpu]), order[gpu]))[:count]
        for gpu in chosen:
            self._holders[gpu].append(owner)
        return sorted(chosen, key=order.__getitem__)

    def claim(self, owner: str, ids: Iterable[str]) -> list[str]:
        """Record GPUs that ``owner`` already holds (after a hub restart); return the ids that could not be."""
        refused = []
        for gpu in ids:
            owners = self._holders.get(gpu)
            if owners is None or (owner not in owners and len(owners) >= self.users_per_gpu):
                refused.append(gpu)
            elif owner not in owners:
                owners.append(owner)
        return refused

    def release(self, owner: str) -> list[str]:
        released = self.held_by(owner)
        for gpu in released:
            self._holders[gpu].remove(owner)
        return released

    def table(self) -> dict[str, list[str]]:
        return {gpu: list(owners) for gpu, owners in self._holders.items()}
