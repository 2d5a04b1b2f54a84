"""A line for starting servers: a few start at a time, the others wait their turn, first come first served.

When a class logs in at once, thirty servers booting together on a small host all finish late, and some
past any timeout; in a line each starts as fast as the host allows, and the ones waiting can be told where
they stand. JupyterHub's own ``concurrent_spawn_limit`` refuses the excess instead of queueing it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager


class StartLine:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a line lets at least one start at a time")
        self.capacity = capacity
        self.starting = 0
        self._waiting: deque[asyncio.Future] = deque()

    def ahead_of(self, turn: asyncio.Future) -> int:
        """How many wait before ``turn`` (0: it is next)."""
        return self._waiting.index(turn) if turn in self._waiting else 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def turn(self, on_wait=None):
        """Hold one of the places to start in, waiting for it in line if all are taken. ``on_wait(turn)`` is
        called with the waiting future, so that the caller can ask :meth:`ahead_of` while it waits."""
        if self.starting < self.capacity and not self._waiting:
            self.starting += 1
        else:
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            if on_wait:
                on_wait(turn)
            try:
                await turn  # the place is handed over by whoever leaves it: self.starting is unchanged
            except asyncio.CancelledError:
                if turn in self._waiting:
                    self._waiting.remove(turn)
                elif turn.done() and not turn.cancelled():
                    self._leave()  # handed a place just as it gave up: pass it on
                raise
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.starting -= 1
