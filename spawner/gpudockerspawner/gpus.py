"""Where a server's GPUs come from, and the one policy both spawners follow: who may have a GPU, how many a
server gets, and what happens when none is free.

Two sources: the host's own pool (GPUDockerSpawner: the hub reserves the GPUs before it creates the container)
and Swarm's generic resources (GPUSwarmSpawner: Swarm picks them when it places the task, and the spawner reads
them back). The spawners keep only what differs: how a container or a service is made and read back.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from tornado.web import HTTPError

from gpudockerspawner.budgets import Budget, parse_period
from gpudockerspawner.gpu_rules import GroupRule, group_rules
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

    def total(self, kind: str | None = None) -> int:
        """GPUs (of ``kind``, or of any) here."""
        return self._pool().count(kind) if self.ids and kind is not None else len(self.ids)

    async def free(self, kind: str | None = None) -> int:
        """GPUs (of ``kind``, or of any) that could take one more server now."""
        return self._pool().free_gpus(kind) if self.ids else 0

    def sharing(self) -> str:
        return f" ({self.users_per_gpu} users per GPU)" if self.users_per_gpu > 1 else ""

    def reserve(self, owner: str, count: int, kinds: Iterable[str] = (), avoid: Iterable[str] = ()) -> list[str] | None:
        """The GPUs reserved for ``owner`` now, all of one of ``kinds`` (in order of preference; none: any) and of
        none in ``avoid``; or None where too few are free."""
        return self._pool().allocate(owner, count, kinds, avoid)

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
    """The GPU nodes' units, which Swarm hands out as generic resources when it places a task: counted per kind,
    and a kind chosen for a server (``choose``), whose resource its service then asks Swarm for."""

    def __init__(self, count: Callable[[str | None], int], free: Callable[[str | None], Awaitable[int]],
                 choose: Callable[[int, list[str]], bool]):
        self._count = count
        self._free = free
        self._choose = choose

    def total(self, kind: str | None = None) -> int:
        return self._count(kind)

    async def free(self, kind: str | None = None) -> int:
        """Units (of ``kind``, or of any) that no running server holds, on the nodes a server of this user's may
        start on."""
        return await self._free(kind)

    def sharing(self) -> str:
        return ""

    def reserve(self, owner: str, count: int, kinds: Iterable[str] = (), avoid: Iterable[str] = ()) -> list[str] | None:
        """None where no kind of ``kinds`` (none: any) has ``count`` units; otherwise none yet: Swarm names them
        when it places the task."""
        return [] if self._choose(count, list(kinds)) else None

    def release(self, owner: str) -> list[str]:
        return []  # Swarm takes them back with the task

    def restored(self, owner: str, recorded: list[str], log) -> list[str]:
        return list(recorded)  # the task's own, as read back when it started


class Ledger:
    """Who holds how many GPUs under which group's rule, in this hub process: what the groups' caps count.
    Servers starting count as soon as they are promised their GPUs; a hub restart reads it back from each
    running server's state."""

    def __init__(self):
        self._held: dict[str, tuple[str, int]] = {}

    def hold(self, owner: str, group: str, count: int) -> None:
        self._held[owner] = (group, count)

    def drop(self, owner: str) -> int:
        """Forget ``owner``'s GPUs; how many they held."""
        return self._held.pop(owner, ("", 0))[1]

    def by_group(self) -> Counter:
        held = Counter()
        for group, count in self._held.values():
            held[group] += count
        return held


@dataclass(frozen=True)
class GPUPolicy:
    """Who may have a GPU and how many (``rules``, one per group; everyone gets ``gpus_per_user`` where there are
    none), and what a spawn that finds none free does (``on_exhausted``: refuse it with a message, start the
    server CPU-only, or wait in line for the next GPU released)."""

    rules: tuple[GroupRule, ...] = ()
    gpus_per_user: int = 1
    on_exhausted: str = "refuse"
    # The budget of those whom no group's rule covers (everyone where there are no groups).
    budget: Budget | None = None

    @classmethod
    def from_groups(cls, groups, gpus_per_user: int = 1, on_exhausted: str = "refuse", gpu_hours: float | None = None,
                    budget_period="week") -> GPUPolicy:
        """From ``gpu_groups`` as configured (see parse_gpu_groups; each member gets ``gpus_per_user`` where
        the group's rule does not say, and ``budget_period`` for a budget without a period of its own). Where there
        are groups, the rule of group "" is for the users who may have a GPU whatever their groups
        (``gpu_users``); ``gpu_hours`` is its budget. A ValueError where a rule cannot be met."""
        period = parse_period(budget_period)
        rules = group_rules(groups, gpus_per_user, period)
        budget = Budget(gpu_hours, None, period) if gpu_hours is not None else None
        return cls(rules + ((GroupRule("", gpus_per_user, budget=budget),) if rules else ()), gpus_per_user,
                   on_exhausted, budget)

    @property
    def waits(self) -> bool:
        return self.on_exhausted == "wait"

    def every_rule(self) -> tuple[GroupRule, ...]:
        """Every rule a hold can be granted under: the groups' (with the "" rule of ``gpu_users``), or, where there
        are no groups, everyone's."""
        return self.rules or tuple(self.rules_for([]))

    def rule_named(self, group: str) -> GroupRule | None:
        """The rule a hold was granted under, by the group its record names (None: a rule since removed)."""
        return next((rule for rule in self.every_rule() if rule.group == group), None)

    def rules_for(self, user_groups: Iterable[str], kinds: Iterable[str] = ()) -> list[GroupRule]:
        """The rules a user is under that allow one of ``kinds`` (none: any), the most generous first (more GPUs
        per server, then the larger cap)."""
        if not self.rules:
            return [GroupRule("", self.gpus_per_user, budget=self.budget)]
        names, kinds = set(user_groups), list(kinds)
        return sorted((rule for rule in self.rules if rule.group in names and rule.allows(kinds) is not None),
                      key=lambda rule: (-rule.gpus_per_user, -(rule.max_gpus or math.inf)))

    def kinds_for(self, user_groups: Iterable[str]) -> set[str] | None:
        """The kinds of GPU a user's rules let them hold; None: any."""
        rules = self.rules_for(user_groups)
        if not rules or any(not rule.kinds for rule in rules):
            return None
        return {kind for rule in rules for kind in rule.kinds}

    def may_have(self, user_groups: Iterable[str], source) -> bool:
        return bool(self.rules_for(user_groups)) and source.total() > 0

    def rule_with_room(self, user_groups: Iterable[str], ledger: Ledger, kinds: Iterable[str] = (),
                       spendable: Callable[[GroupRule], bool] | None = None) -> GroupRule | None:
        """The most generous of the user's rules that allow one of ``kinds`` (none: any), whose group's cap
        leaves room for one more server and (where ``spendable`` says) whose budget has hours left."""
        held = ledger.by_group()
        return next((rule for rule in self.rules_for(user_groups, kinds)
                     if rule.has_room(held[rule.group]) and (spendable is None or spendable(rule))), None)

    def capped(self, user_groups: Iterable[str], ledger: Ledger) -> str:
        """The words for a spawn whose groups all hold as many GPUs as their rules allow."""
        held = ledger.by_group()
        said = "; ".join(f"{rule.group} holds {held[rule.group]} of its {rule.max_gpus} ({rule})"
                         for rule in self.rules_for(user_groups))
        return f"Your group's GPUs are all in use: {said}."

    @staticmethod
    def all_in_use(source, where: str = "", kinds: dict[str, str] | None = None) -> str:
        """The one sentence for "no GPU is free" (``where``: on which nodes, if not all; ``kinds``: the kinds asked
        for, with their labels, where not any), on the form and in answers alike."""
        if not kinds:
            return f"All {source.total()} GPUs are in use{where}{source.sharing()}"
        count = sum(source.total(kind) for kind in kinds)
        return (f"All {count} GPU{'s' if count != 1 else ''} of the kind{'s' if len(kinds) > 1 else ''} asked for "
                f"({'; '.join(kinds.values())}) are in use{where}{source.sharing()}")

    def none_free(self, source, where: str = "", kinds: dict[str, str] | None = None) -> str:
        """The words for a spawn that finds no GPU free. Raises the refusal under ``refuse``; otherwise returns
        them, and the server waits in line or starts CPU-only."""
        return self.answer(f"{self.all_in_use(source, where, kinds)}; try again later, or start a CPU-only server.")

    def answer(self, message: str) -> str:
        """``message`` raised as the refusal under ``refuse``, or returned."""
        if self.on_exhausted == "refuse":
            raise refusal(message)
        return message
