"""Everyone's standing in the GPU budgets at once: for the admins' GPU-hours page (the GPU service) and the
budget gauges on the hub's metrics. One person's own standing, for their spawns, is the spawner's
(``GPUDockerSpawner.standing``); both read it with ``budgets.person_standing``."""

from __future__ import annotations

import math

from gpudockerspawner.budgets import Budget, Standing, outside_term, person_standing, zone
from gpudockerspawner.gpus import GPUPolicy
from gpudockerspawner.usage import UsageLog


class Budgets:
    """The GPU budgets as the hub's spawner has them (its traits gpu_groups, gpu_hours, budget_period and
    budget_timezone, as a dict): each person's standing under the most generous of their rules that has a budget,
    and each group's budget together."""

    def __init__(self, settings: dict):
        self.policy = GPUPolicy.from_groups(settings.get("gpu_groups") or {}, 1, "refuse", settings.get("gpu_hours"),
                                            settings.get("budget_period") or "week")
        self.tz = zone(settings.get("budget_timezone") or "UTC")
        # Minutes a running server goes on after its budget ran out (the spawner's budget_grace).
        self.grace = float(settings.get("budget_grace") or 0)

    @property
    def any(self) -> bool:
        return any(rule.budget for rule in self.policy.rules) or self.policy.budget is not None

    def rows(self, usage: UsageLog, users: list[dict], now: float) -> dict[str, list[dict]]:
        """{"people": [...], "groups": [...]}: budget, used, left and renewal of each person and group with one."""
        people, groups = [], []
        for user in sorted(users, key=lambda user: user["name"]):
            rule = next((rule for rule in self.policy.rules_for(user["groups"]) if rule.budget), None)
            if rule is not None and rule.budget.hours is not None:
                found = person_standing(usage, Budget(rule.budget.hours, None, rule.budget.period), rule.group,
                                        user["name"], now, self.tz)
                people.append(self._row(user["name"], rule, found, now))
        for rule in self.policy.rules:
            if rule.budget and rule.budget.together is not None:
                found = person_standing(usage, Budget(None, rule.budget.together, rule.budget.period), rule.group,
                                        "", now, self.tz)
                groups.append(self._row(rule.group, rule, found, now))
        return {"people": people, "groups": groups}

    def held(self, usage: UsageLog, name: str, group: str, weight: float, now: float) -> tuple[Standing | None, float]:
        """Where ``name`` stands in the budget of the rule their running server's GPUs were granted under (``group``,
        as the hold says), and when what is left runs out at ``weight`` whole GPUs held (infinity: it lasts; ``now``:
        outside its term) -- as the spawner's ``budget_now`` has it."""
        rule = self.policy.rule_named(group)
        if rule is None or rule.budget is None:
            return None, math.inf
        found = person_standing(usage, rule.budget, rule.group, name, now, self.tz)
        if found is None:
            return None, now
        return found, found.runs_out(now, weight)

    def _row(self, name: str, rule, found, now: float) -> dict:
        if found is None:  # outside its term
            return {"name": name, "group": rule.group, "budget": str(rule.budget), "limit": 0.0, "used": 0.0,
                    "left": 0.0, "renews": outside_term(rule.budget, now, self.tz)}
        return {"name": name, "group": rule.group, "budget": str(rule.budget), "limit": found.limit,
                "used": found.used, "left": found.left, "renews": found.period.renewal(found.end, self.tz)}

    def gauges(self, usage: UsageLog, now: float) -> tuple[dict[str, tuple[str, float]], dict[str, float]]:
        """GPU-hours left, {user: (group, hours)} of each person who held a GPU in the last 31 days (under the rule
        of their latest hold), and {group: hours} of each group's budget together."""
        latest: dict[str, str] = {}
        for hold in usage.holds(now - 31 * 86400, now):
            latest[hold.user] = hold.group
        rules = {rule.group: rule for rule in self.policy.every_rule()}
        people = {}
        for name, group in sorted(latest.items()):
            rule = rules.get(group)
            if rule is not None and rule.budget is not None and rule.budget.hours is not None:
                found = person_standing(usage, Budget(rule.budget.hours, None, rule.budget.period), group, name, now,
                                        self.tz)
                people[name] = (group, round(found.left, 4) if found else 0.0)
        groups = {row["name"]: row["left"] for row in self.rows(usage, [], now)["groups"]}
        return people, groups

