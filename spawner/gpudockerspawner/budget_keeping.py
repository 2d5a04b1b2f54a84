"""A GPU spawner's budget keeping: where its user stands in their GPU budgets (budgets.py) for the form and a start,
and, at each poll of a running server, whether its budget has ended. The spawner's traits gpu_hours,
budget_period, budget_timezone and budget_grace say what the budgets are (see GPUDockerSpawner)."""

from __future__ import annotations

import math
import time

from gpudockerspawner.budgets import (
    WARN_BEFORE,
    WARN_USED,
    Standing,
    clock,
    hours,
    outside_term,
    person_standing,
    zone,
)
from gpudockerspawner.culling import CULLED


class BudgetKeeping:
    """Mixed into GPUDockerSpawner: it needs the spawner's ``usage()``, ``gpu_policy``, ``ledger()``, the user's
    groups, the current server's ``assigned_gpus`` and ``gpu_group``, and the budget traits."""

    # The last warning logged that the GPU budget nears its end: (period, 80 % used, within 15 minutes).
    _budget_warned: tuple | None = None

    def standing(self, rule, now: float | None = None) -> Standing | None:
        """Where this user stands in ``rule``'s GPU budget now (None: it has none, or it is outside its term, or
        no usage record is kept to count it by)."""
        usage = self.usage()
        if rule is None or rule.budget is None or usage is None:
            return None
        return person_standing(usage, rule.budget, rule.group, self.user.name, time.time() if now is None else now,
                               zone(self.budget_timezone))

    def _spendable(self, rule) -> bool:
        """Whether ``rule``'s budget (if any) has GPU-hours left for this user now."""
        if rule.budget is None or self.usage() is None:
            return True
        found = self.standing(rule)
        return found is not None and found.left > 0

    def budget_spent(self, kinds=()) -> str:
        """Why this user's GPU budgets leave them no GPU now, in words (the first of their rules with room)."""
        held = self.ledger().by_group()
        for rule in self.gpu_policy.rules_for(self._group_names(), kinds):
            if rule.has_room(held[rule.group]) and rule.budget is not None:
                found = self.standing(rule)
                if found is None:
                    return (f"The GPU budget's {outside_term(rule.budget, time.time(), zone(self.budget_timezone))}:"
                            " no GPU-hours outside it")
                return found.spent()
        return "Your GPU budget is used up"

    def _rule_held(self):
        """The rule the current server's GPUs were granted under."""
        return self.gpu_policy.rule_named(self.gpu_group)

    def budget_now(self) -> tuple[Standing | None, float]:
        """The current GPU server's budget as it stands, and when (Unix seconds) what is left runs out at the pace
        of the GPUs held (infinity where it lasts to the period's end; 0 where there is no budget)."""
        rule = self._rule_held()
        if not self.assigned_gpus or rule is None or rule.budget is None:
            return None, 0.0
        now = time.time()
        found = self.standing(rule, now)
        if found is None:
            return None, now  # outside its term: nothing left
        return found, found.runs_out(now, len(self.assigned_gpus) * float(self._held_kind().get("share", 1.0)))

    def _budget_ended(self) -> str | None:
        """Why the running server is stopped now for its GPU budget (None: it runs on); warns once in the log as
        the end nears."""
        if not self.assigned_gpus or self.usage() is None:
            return None
        rule = self._rule_held()
        if rule is None or rule.budget is None:
            return None
        found, runs_out = self.budget_now()
        now = time.time()
        if found is None:
            reason = f"its GPU budget's {outside_term(rule.budget, now, zone(self.budget_timezone))}"
        elif found.left > 0 or now - runs_out < self.budget_grace * 60:
            if found.used >= WARN_USED * found.limit or runs_out - now <= WARN_BEFORE:
                warning = (found.start, found.used >= WARN_USED * found.limit, runs_out - now <= WARN_BEFORE)
                if warning != self._budget_warned:
                    self._budget_warned = warning
                    self.log.warning("%s: %s; %s", self.owner, found.sentence(),
                                     f"at this pace the GPU budget runs out at {clock(runs_out)}"
                                     if runs_out < math.inf else "at this pace it lasts until then")
            return None
        else:
            reason = (f"its GPU budget {found.period.name()} ran out ({hours(found.used)} of {hours(found.limit)} "
                      "GPU-hours)")
            reason += f"; it {found.period.renewal(found.end, found.tz)}" if found.period.every != "term" else ""
        self.log.info("%s: stopping the server: %s", self.owner, reason)
        self.usage().note_reason(self.owner, CULLED + reason)
        return reason
