"""A pool of GPU ids shared by the spawners of one hub process.

Every method is synchronous: in the hub's single asyncio loop a check and the
reservation that follows it cannot be interleaved with another spawn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# nvidia-smi's UUIDs: GPU-<uuid> and MIG-<uuid> (or the older MIG-GPU-<uuid>/<gi>/<ci>).
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GPU_ID = re.compile(rf"^(?:[0-9]+|GPU-{_UUID}|MIG-{_UUID}|MIG-GPU-{_UUID}/[0-9]+/[0-9]+)$")
UNRESOLVED = ("all", "auto")


class PoolError(ValueError):
    """A pool definition that cannot be used."""


def parse_gpu_ids(value: str | Iterable[str]) -> list[str]:
    """Accept a list, ``"0,1,2"``, or the legacy one-character-per-GPU form ``"012"``."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in UNRESOLVED:
            raise PoolError(f"gpu_ids {text!r} must be resolved to the host's GPU ids before the hub starts")
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
        raise PoolError(f"malformed GPU ids {bad}: use device indexes (0, 1, ...) or UUIDs (GPU-..., MIG-...)")
    duplicates = sorted({gpu for gpu in ids if ids.count(gpu) > 1})
    if duplicates:
        raise PoolError(f"GPU ids listed more than once: {duplicates}")
    return ids


class GPUPool:
    """Which owners hold which GPUs (units: whole GPUs or MIG devices), with at most ``users_per_gpu`` owners on
    each; each unit of a kind (``kinds``: by id; "" where none is said)."""

    def __init__(self, ids: Iterable[str], users_per_gpu: int = 1, kinds: Mapping[str, str] | None = None):
        if users_per_gpu < 1:
            raise PoolError(f"users_per_gpu must be at least 1, not {users_per_gpu}")
        self.ids = list(ids)
        self.users_per_gpu = users_per_gpu
        self.kinds = {gpu: (kinds or {}).get(gpu, "") for gpu in self.ids}
        self._order = {gpu: index for index, gpu in enumerate(self.ids)}
        self._holders: dict[str, list[str]] = {gpu: [] for gpu in self.ids}
        self._held: dict[str, list[str]] = {}

    def held_by(self, owner: str) -> list[str]:
        return list(self._held.get(owner, ()))

    def owners(self) -> dict[str, list[str]]:
        return {owner: list(ids) for owner, ids in self._held.items()}

    def free_gpus(self, kind: str | None = None) -> int:
        """GPUs (of ``kind``, or of any) with room for one more owner."""
        return sum(1 for gpu, owners in self._holders.items()
                   if len(owners) < self.users_per_gpu and kind in (None, self.kinds[gpu]))

    def count(self, kind: str | None = None) -> int:
        """GPUs (of ``kind``, or of any) in the pool."""
        return sum(1 for gpu in self.ids if kind in (None, self.kinds[gpu]))

    def free_slots(self) -> int:
        return sum(self.users_per_gpu - len(owners) for owners in self._holders.values())

    def allocate(self, owner: str, count: int, kinds: Iterable[str] = (),
                 avoid: Iterable[str] = ()) -> list[str] | None:
        """Reserve ``count`` GPUs of one kind for ``owner``: of the first of ``kinds`` (in order of preference; none:
        any kind, in pool order) that has enough free and is not in ``avoid``; least loaded first, ties in pool
        order. None if too few."""
        if owner in self._held:
            return self.held_by(owner)
        avoid = set(avoid)
        order = list(kinds) or list(dict.fromkeys(self.kinds[gpu] for gpu in self.ids))
        for kind in order:
            if kind in avoid:
                continue
            candidates = [gpu for gpu in self.ids
                          if self.kinds[gpu] == kind and len(self._holders[gpu]) < self.users_per_gpu]
            if len(candidates) >= count:
                chosen = sorted(candidates, key=lambda gpu: (len(self._holders[gpu]), self._order[gpu]))[:count]
                return self._record(owner, chosen)
        return None

    def claim(self, owner: str, ids: Iterable[str]) -> list[str]:
        """Record GPUs that ``owner`` already holds (after a hub restart); return the ids that could not be."""
        accepted, refused = [], []
        for gpu in dict.fromkeys(ids):
            owners = self._holders.get(gpu)
            if owners is None or (owner not in owners and len(owners) >= self.users_per_gpu):
                refused.append(gpu)
            elif owner not in owners:
                accepted.append(gpu)
        if accepted:
            self._record(owner, self.held_by(owner) + accepted)
        return refused

    def release(self, owner: str) -> list[str]:
        released = self._held.pop(owner, [])
        for gpu in released:
            self._holders[gpu].remove(owner)
        return released

    def table(self) -> dict[str, list[str]]:
        return {gpu: list(owners) for gpu, owners in self._holders.items()}

    def _record(self, owner: str, ids: list[str]) -> list[str]:
        ids = sorted(set(ids), key=self._order.__getitem__)
        for gpu in ids:
            if owner not in self._holders[gpu]:
                self._holders[gpu].append(owner)
        self._held[owner] = ids
        return list(ids)


def rebuild(ids: Iterable[str], users_per_gpu: int, running: Mapping[str, Iterable[str]],
            kinds: Mapping[str, str] | None = None) -> tuple[GPUPool, list[str]]:
    """The pool at hub start, from what the labels of running containers say; with a message to log
    for each GPU that a running container holds but the pool cannot give it."""
    pool = GPUPool(ids, users_per_gpu, kinds)
    problems = []
    for owner in sorted(running):
        refused = pool.claim(owner, running[owner])
        if refused:
            problems.append(
                f"{owner}: running container holds GPUs {refused} that are not in the pool or are "
                f"already taken by another running container; stop one of them"
            )
    return pool, problems


def disagreement(pool: GPUPool, owner: str, recorded: Iterable[str]) -> str | None:
    """How the hub database's record of ``owner``'s GPUs differs from the pool (what is running)."""
    recorded, live = sorted(recorded), sorted(pool.held_by(owner))
    if recorded == live:
        return None
    if not live:
        return f"{owner}: hub database records GPUs {recorded} but no running container of theirs holds any"
    return f"{owner}: hub database records GPUs {recorded}, the running container holds {live}; keeping {live}"
