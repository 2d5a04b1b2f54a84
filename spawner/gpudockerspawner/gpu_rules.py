"""The groups' GPU rules (``gpu_groups``): what a rule may say, parsed and checked once, for the hub's configuration
(the spawner's trait) and the deploy's settings alike. Standard library only: the deploy's own environment reads it
without the hub's packages."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleKey:
    """One key a group's rule may have: a whole number within bounds, or (``names``) a list of names."""

    help: str
    low: int = 0
    high: int = 0
    names: bool = False

    def read(self, group: str, key: str, value):
        if self.names:
            if (not isinstance(value, (list, tuple)) or not value
                    or not all(isinstance(name, str) and name.strip() for name in value)):
                raise ValueError(f"gpu_groups[{group!r}]: {key} = {value!r}; allowed: a list of one or more names")
            return list(value)
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise ValueError(f"gpu_groups[{group!r}]: {key} = {value!r}; allowed: a whole number from {self.low} to "
                             f"{self.high}")
        return value

    def describe(self, key: str) -> str:
        allowed = "a list of kinds" if self.names else f"{self.low} to {self.high}"
        return f"`{key}`, {allowed}: {self.help.rstrip('.')}"


# What a group's rule may say (``gpu_groups``), each key's bounds and meaning: declared here once, for the hub's
# configuration (the spawner's trait) and the deploy's settings alike.
RULE_KEYS = {
    "gpus_per_user": RuleKey("GPUs each member's GPU server gets. Empty: `gpus_per_user`.", 1, 64),
    "max_gpus": RuleKey("GPUs the group's members hold together at most. Empty: no cap.", 1, 4096),
    "gpu_kinds": RuleKey("The kinds of GPU its members may hold, as nvidia-smi names them (a model, or a MIG profile "
                         "of one: see image profiles' `gpu_kinds`). Empty: any kind.", names=True),
}


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
    than that many held by the group's members together. The rule of group "" is everyone's (no groups set)."""

    group: str
    gpus_per_user: int
    max_gpus: int | None = None
    kinds: tuple[str, ...] = ()  # the kinds of GPU its members may hold (none: any)

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
                + (f", only {' or '.join(self.kinds)}" if self.kinds else ""))


def group_rules(groups, gpus_per_user: int) -> tuple[GroupRule, ...]:
    """The rules of ``gpu_groups`` as configured (see parse_gpu_groups), each member getting ``gpus_per_user`` where
    the group's rule does not say; a ValueError where a rule cannot be met."""
    parsed = parse_gpu_groups(groups)
    check_caps(parsed, gpus_per_user)
    return tuple(GroupRule(name, rule.get("gpus_per_user") or gpus_per_user, rule.get("max_gpus"),
                           tuple(rule.get("gpu_kinds") or ()))
                 for name, rule in parsed.items())
