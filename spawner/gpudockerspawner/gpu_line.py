"""The line for GPUs: where none is free, a spawn may wait for the next one released, first come first served.

A released GPU goes to the first in line who may take it, not to whoever presses Start first: while anyone
waits, a newcomer joins the end. The line is walked from its head whenever something is released (and every
few seconds, for GPUs that come back without the hub seeing them go: a cluster's node back, Swarm letting go of
a stopped server's): a waiter whose groups hold all the GPUs their rules allow is passed over (no free GPU would
help it); one for whom too few are free holds back what it waits for from everyone behind: where it waits for any
GPU the walk ends there, where for certain kinds (an A100, a MIG slice) those behind may still take other kinds.

The line lives in the hub's process. A hub restart ends every wait: the hub keeps no spawn that has not
started, and those who waited start again, at the end of a new line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# What a waiter's attempt to take its GPUs found (SPENT: the user's GPU budget has no hours left).
TAKEN, CAPPED, TOO_FEW, SPENT = "taken", "capped", "too few", "spent"


@dataclass(eq=False)
class Waiter:
    owner: str
    # Tries to take the GPUs now, of no kind in the set it is given (held back for those before it); answers TAKEN,
    # CAPPED or TOO_FEW.
    take: Callable[[frozenset[str]], Awaitable[str]]
    turn: asyncio.Future
    since: float = field(default_factory=time.monotonic)
    # Spawn pages showing this wait now (a wait through the REST API has none, and is not ended for that).
    watchers: int = 0
    # What its last attempt found (None before the first).
    found: str | None = None
    # The kinds it waits for (none: any).
    kinds: tuple[str, ...] = ()


class GPULine:
    def __init__(self, tick: float = 2.0):
        self.tick = tick
        self._waiting: list[Waiter] = []
        self._wake: asyncio.Event | None = None
        self._walker: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def place(self, waiter: Waiter) -> int | None:
        """``waiter``'s place, 1 for the first; None once it has left."""
        return self._waiting.index(waiter) + 1 if waiter in self._waiting else None

    def join(self, owner: str, take: Callable[[frozenset[str]], Awaitable[str]], front: bool = False,
             kinds: tuple[str, ...] = ()) -> Waiter:
        """A new waiter at the end (``front``: at the head, for one that had its turn and lost the GPU to a race
        it could not see, such as Swarm placing another server first), waiting for GPUs of ``kinds`` (none: any)."""
        waiter = Waiter(owner, take, asyncio.get_running_loop().create_future(), kinds=tuple(kinds))
        self._waiting.insert(0 if front else len(self._waiting), waiter)
        self.released()  # a newcomer passed over no one: it may go at once where only capped groups wait
        return waiter

    async def wait(self, waiter: Waiter, timeout: float) -> None:
        """Until ``waiter`` has taken its GPUs. It leaves the line when it waited ``timeout`` seconds
        (TimeoutError), is cancelled, or is sent away (:meth:`leave` with an error, which is raised here)."""
        try:
            await asyncio.wait_for(asyncio.shield(waiter.turn), timeout)
        finally:
            self.leave(waiter)

    def leave(self, waiter: Waiter, error: BaseException | None = None) -> None:
        """Out of the line; those behind move up. With ``error``, the wait ends with it."""
        if waiter not in self._waiting:
            return
        self._waiting.remove(waiter)
        if not waiter.turn.done():
            if error is not None:
                waiter.turn.set_exception(error)
            else:
                waiter.turn.cancel()
        self.released()

    def released(self) -> None:
        """Something may have come free (or the line changed): walk it."""
        if not self._waiting:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._walker is None or self._walker.done():
            self._walker = asyncio.ensure_future(self._walk())

    async def _walk(self) -> None:
        while self._waiting:
            self._wake.clear()
            held_back: set[str] = set()  # kinds that a waiter before waits for
            for waiter in list(self._waiting):
                if waiter not in self._waiting:
                    continue  # left while an earlier one was asked
                if waiter.kinds and set(waiter.kinds) <= held_back:
                    continue  # all it may take, one before it waits for
                try:
                    answer = await waiter.take(frozenset(held_back))
                except Exception as error:  # its spawn fails with it; the line goes on
                    self.leave(waiter, error)
                    continue
                if waiter not in self._waiting:
                    continue
                waiter.found = answer
                if answer == TAKEN:
                    self._waiting.remove(waiter)
                    waiter.turn.set_result(None)
                elif answer == TOO_FEW:
                    if not waiter.kinds:
                        break  # it waits for any GPU: nobody behind may take one
                    held_back.update(waiter.kinds)
            if self._waiting:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.tick)
                except asyncio.TimeoutError:
                    pass
