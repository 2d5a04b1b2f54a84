"""The groups' GPU rules (``gpu_groups``): what a rule may say, parsed and checked once, for the hub's configuration
(the spawner's trait) and the deploy's settings alike. Standard library only: the deploy's own environment reads it
without the hub's packages."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# What a group's rule may say (``gpu_groups``), each key's bounds and meaning: declared here once, for the hub's
# configuration (the spawner's trait) and the deploy's settings alike.
RULE_KEYS = {
    "gpus_per_user": (1, 64, "GPUs each member's GPU server gets. Empty: `gpus_per_user`."),
    "max_gpus": (1, 4096, "GPUs the group's members hold together at most. Empty: no cap."),
}


def parse_gpu_groups(groups) -> dict[str, dict[str, int]]:
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
            low, high, _ = RULE_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"gpu_groups[{name!r}]: {key} = {value!r}; allowed: a whole number from {low} "
                                 f"to {high}")
            parsed[key] = value
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

    def has_room(self, held: int) -> bool:
        return self.max_gpus is None or held + self.gpus_per_user <= self.max_gpus

    def __str__(self) -> str:
        each = f"{self.gpus_per_user} GPU{'s' if self.gpus_per_user > 1 else ''} each"
        return f"group {self.group}: {each}" + (f", at most {self.max_gpus} together" if self.max_gpus else "")


def group_rules(groups, gpus_per_user: int) -> tuple[GroupRule, ...]:
    """The rules of ``gpu_groups`` as configured (see parse_gpu_groups), each member getting ``gpus_per_user`` where
    the group's rule does not say; a ValueError where a rule cannot be met."""
    parsed = parse_gpu_groups(groups)
    check_caps(parsed, gpus_per_user)
    return tuple(GroupRule(name, rule.get("gpus_per_user") or gpus_per_user, rule.get("max_gpus"))
                 for name, rule in parsed.items())
