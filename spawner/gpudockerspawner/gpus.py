"""Where a server's GPUs come from, and the one policy both spawners follow: who may have a GPU, how many a
server gets, and what happens when none is free.

Two sources: the host's own pool (GPUDockerSpawner: the hub reserves the GPUs before it creates the container)
and Swarm's generic resources (GPUSwarmSpawner: Swarm picks them when it places the task, and the spawner reads
them back). The spawners keep only what differs: how a container or a service is made and read back.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tornado.web import HTTPError

from gpudockerspawner.pool import GPUPool, disagreement


def refusal(message: str) -> HTTPError:
    """A spawn refused with ``message``, which the spawn page shows the user as it is."""
    error = HTTPError(503, log_message=message)
    error.jupyterhub_message = message
    error.jupyterhub_html_message = html.escape(message)
    return error


class HostPool:
    """This host's GPUs, handed out by the hub from a pool that it rebuilds from running containers' labels."""

    def __init__(self, ids: list[str], users_per_gpu: int, pool: Callable[[], GPUPool]):
        self.ids = ids
        self.users_per_gpu = users_per_gpu
        self._pool = pool  # made on first use: a hub without GPUs never asks Docker for its containers

    def total(self) -> int:
        return len(self.ids)

    def sharing(self) -> str:
        return f" ({self.users_per_gpu} users per GPU)" if self.users_per_gpu > 1 else ""

    def reserve(self, owner: str, count: int) -> list[str] | None:
        """The GPUs reserved for ``owner`` now, or None where too few are free."""
        return self._pool().allocate(owner, count)

    def release(self, owner: str) -> list[str]:
        return self._pool().release(owner)

    def restored(self, owner: str, recorded: list[str], log) -> list[str]:
        """What ``owner`` holds after a hub restart: what their running container holds, whatever the hub's
        database recorded (a disagreement is logged)."""
        if not self.ids:
            return []
        problem = disagreement(self._pool(), owner, recorded)
        if problem:
            log.warning("GPU pool: %s", problem)
        return self._pool().held_by(owner)


class SwarmResources:
    """The GPU nodes' GPUs, which Swarm hands out as generic resources when it places a task."""

    def __init__(self, count: Callable[[], int]):
        self._count = count

    def total(self) -> int:
        return self._count()

    def sharing(self) -> str:
        return ""

    def reserve(self, owner: str, count: int) -> list[str] | None:
        """None (no GPU at all), or none yet: Swarm names them when it places the task."""
        return [] if self.total() else None

    def release(self, owner: str) -> list[str]:
        return []  # Swarm takes them back with the task

    def restored(self, owner: str, recorded: list[str], log) -> list[str]:
        return list(recorded)  # the task's own, as read back when it started


@dataclass(frozen=True)
class GPUPolicy:
    """Who may have a GPU (members of ``groups``; everyone where it is empty), and what a spawn that finds none
    free does (``on_exhausted``: refuse it with a message, or start the server CPU-only)."""

    groups: tuple[str, ...] = ()
    on_exhausted: str = "refuse"

    def may_have(self, user_groups: Iterable[str], source) -> bool:
        if self.groups and not set(user_groups) & set(self.groups):
            return False
        return source.total() > 0

    def none_free(self, source, where: str = "") -> str:
        """The words for a spawn that finds no GPU free (``where``: on which nodes, if not all). Raises the refusal
        under ``refuse``; otherwise returns them for the log, and the server starts CPU-only."""
        message = (f"All {source.total()} GPUs are in use{where}{source.sharing()}; try again later, or start a "
                   "CPU-only server.")
        if self.on_exhausted == "refuse":
            raise refusal(message)
        return message
