"""The groups' GPU rules (``gpu_groups``): what a rule may say, parsed and checked once, for the hub's configuration
(the spawner's trait) and the deploy's settings alike. Standard library only: the deploy's own environment reads it
without the hub's packages."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from gpudockerspawner.budgets import Budget, Period, parse_period


@dataclass(frozen=True)
class RuleKey:
    """One key a group's rule may have: a whole number within bounds, a number of hours (``hours``), a list of
    names (``names``) or a budget's period (``period``)."""

    help: str
    low: int = 0
    high: int = 0
    names: bool = False
    hours: bool = False
    period: bool = False

    def read(self, group: str, key: str, value):
        where = f"gpu_groups[{group!r}]: {key}"
        if self.period:
            parse_period(value, where)
            return value  # as written: the rule stays data (the hub's settings file is JSON); budget_of reads it
        if self.names:
            if (not isinstance(value, (list, tuple)) or not value
                    or not all(isinstance(name, str) and name.strip() for name in value)):
                raise ValueError(f"{where} = {value!r}; allowed: a list of one or more names")
            return list(value)
        if self.hours:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= self.high:
                raise ValueError(f"{where} = {value!r}; allowed: a number of hours above 0, at most {self.high}")
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise ValueError(f"{where} = {value!r}; allowed: a whole number from {self.low} to {self.high}")
        return value

    def describe(self, key: str) -> str:
        allowed = ("a list of kinds" if self.names else "day, week, month, a span like `6 hours`, or a term"
                   if self.period else f"hours, at most {self.high}" if self.hours else f"{self.low} to {self.high}")
        return f"`{key}`, {allowed}: {self.help.rstrip('.')}"


# What a group's rule may say (``gpu_groups``), each key's bounds and meaning: declared here once, for the hub's
# configuration (the spawner's trait) and the deploy's settings alike.
RULE_KEYS = {
    "gpus_per_user": RuleKey("GPUs each member's GPU server gets. Empty: `gpus_per_user`.", 1, 64),
    "max_gpus": RuleKey("GPUs the group's members hold together at most. Empty: no cap.", 1, 4096),
    "gpu_kinds": RuleKey("The kinds of GPU its members may hold, as nvidia-smi names them (a model, or a MIG profile "
                         "of one: see image profiles' `gpu_kinds`). Empty: any kind.", names=True),
    "gpu_hours": RuleKey("GPU-hours each member may use per `budget_period` (a MIG slice's hour counts its share of "
                         "the GPU). Empty: no budget per person.", high=100_000, hours=True),
    "gpu_hours_together": RuleKey("GPU-hours the group's members may use together per `budget_period`. Empty: no "
                                  "budget for the group.", high=1_000_000, hours=True),
    "budget_period": RuleKey("How the group's budget renews. Empty: the setting `budget_period`.", period=True),
}
BUDGET_KEYS = ("gpu_hours", "gpu_hours_together")


def parse_gpu_groups(groups) -> dict[str, dict]:
    """``gpu_groups`` as written (a list of group names, or ``{group: {key: value}}`` with the keys of RULE_KEYS)
    as rules by group, keys left out where they are empty; a ValueError names what is wrong and what is
    allowed."""
    if isinstance(groups, (list, tuple)):
        groups = {name: {} for name in groups}
    if not isinstance(groups, dict):
        raise ValueError("allowed: a list of hub group names, or rules by group like "
                         "{'students': {'gpus_per_user': 1, 'max_gpus': 2}}")
    rules = {}
    for name, rule in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{name!r} is not a group name")
        if rule is None:
            rule = {}
        if not isinstance(rule, dict):
            raise ValueError(f"gpu_groups[{name!r}] = {rule!r}: allowed: a rule like {{'gpus_per_user': 1, "
                             "'max_gpus': 2}, or {} for the defaults")
        parsed = {}
        for key, value in rule.items():
            if key not in RULE_KEYS:
                close = difflib.get_close_matches(str(key), RULE_KEYS, n=1)
                raise ValueError(f"gpu_groups[{name!r}]: unknown key {key!r}; "
                                 + (f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(RULE_KEYS)}"))
            if value is None:
                continue
            parsed[key] = RULE_KEYS[key].read(name, key, value)
        if "budget_period" in parsed and not any(key in parsed for key in BUDGET_KEYS):
            raise ValueError(f"gpu_groups[{name!r}]: budget_period = {rule['budget_period']!r} but no budget; "
                             "allowed: budget_period beside gpu_hours or gpu_hours_together")
        rules[name] = parsed
    return rules


def check_caps(rules: dict[str, dict[str, int]], gpus_per_user: int) -> None:
    """Refuse a group's cap below the GPUs each of its members' servers gets: none of them could ever start."""
    for name, rule in rules.items():
        each = rule.get("gpus_per_user") or gpus_per_user
        cap = rule.get("max_gpus")
        if cap is not None and cap < each:
            raise ValueError(f"gpu_groups[{name!r}]: max_gpus {cap} is less than the {each} GPUs each member's "
                             f"server gets, so no member could ever start one; allowed: max_gpus of at least "
                             f"{each}, or no max_gpus")


@dataclass(frozen=True)
class GroupRule:
    """What members of ``group`` get: ``gpus_per_user`` GPUs for each GPU server and, with ``max_gpus``, no more
    than that many held by the group's members together; with a ``budget``, no more GPU-hours per period. The
    rule of group "" is everyone's (no groups set)."""

    group: str
    gpus_per_user: int
    max_gpus: int | None = None
    kinds: tuple[str, ...] = ()  # the kinds of GPU its members may hold (none: any)
    budget: Budget | None = None

    def has_room(self, held: int) -> bool:
        return self.max_gpus is None or held + self.gpus_per_user <= self.max_gpus

    def allows(self, kinds) -> list[str] | None:
        """Of ``kinds`` (in order of preference; none: any), those this rule lets its members hold (none: any);
        None where it allows none of them."""
        if not self.kinds:
            return list(kinds)
        if not kinds:
            return list(self.kinds)
        allowed = [kind for kind in kinds if kind in self.kinds]
        return allowed or None

    def __str__(self) -> str:
        each = f"{self.gpus_per_user} GPU{'s' if self.gpus_per_user > 1 else ''} each"
        return (f"group {self.group}: {each}" + (f", at most {self.max_gpus} together" if self.max_gpus else "")
                + (f", only {' or '.join(self.kinds)}" if self.kinds else "")
                + (f", {self.budget}" if self.budget else ""))


def budget_of(rule: dict, period: Period) -> Budget | None:
    """A parsed rule's budget (its own period, else ``period``); None where it has none."""
    if not any(key in rule for key in BUDGET_KEYS):
        return None
    own = rule.get("budget_period")
    return Budget(rule.get("gpu_hours"), rule.get("gpu_hours_together"), parse_period(own) if own else period)


WEEKLY = Period("week")


def group_rules(groups, gpus_per_user: int, period: Period = WEEKLY) -> tuple[GroupRule, ...]:
    """The rules of ``gpu_groups`` as configured (see parse_gpu_groups), each member getting ``gpus_per_user`` where
    the group's rule does not say and ``period`` for a budget without its own; a ValueError where a rule cannot
    be met."""
    parsed = parse_gpu_groups(groups)
    check_caps(parsed, gpus_per_user)
    return tuple(GroupRule(name, rule.get("gpus_per_user") or gpus_per_user, rule.get("max_gpus"),
                           tuple(rule.get("gpu_kinds") or ()), budget_of(rule, period))
                 for name, rule in parsed.items())
