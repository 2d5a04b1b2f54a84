"""GPU budgets: GPU-hours per person, or per group together, in each period (a day, a week from Monday, a month, a
repeating span like "2 hours", or a term between two dates), in the hub's time zone.

What counts is the usage record (``usage.py``): each hold's seconds times its GPUs times each GPU's share of a whole
one (a MIG 1g.10gb slice of an A100 counts 1/7), from reserve to release, clipped to the period, so that a hold
running across a period's boundary splits at it. The record already loses no second to a hub restart or a SIGKILL
and counts none twice; a budget read from it does the same. Extra hours an admin grants for a period are kept in
the same file (``grants``), so they are backed up and restored with the holds.

Standard library only: the deploy's settings check periods with it, without the hub's packages.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

PERIODS = ("day", "week", "month")
# A repeating span: "90 minutes", "2 hours", "1 day" (counted from midnight, 1 January 1970, in the hub's zone).
SPAN = re.compile(r"^\s*(\d+)\s*(minute|hour|day)s?\s*$")
SPAN_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Before this share of a budget is left, and within this many seconds of its end, the person is warned.
WARN_USED = 0.8
WARN_BEFORE = 15 * 60
ALLOWED = ("allowed: day, week (from Monday), month, a repeating span like '6 hours' or '90 minutes', or a term "
           "{start: 2026-09-01, end: 2026-12-20} (dates, or ISO 8601 times, in the hub's time zone)")


def zone(name: str) -> tzinfo:
    """The hub's time zone by its IANA name (``budget_timezone``); a ValueError names what is wrong."""
    if name in ("UTC", "Etc/UTC"):
        return timezone.utc  # needs no time-zone database
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, or a name that is no path (ValueError)
        raise ValueError(f"budget_timezone = {name!r}: not a time zone this host knows; allowed: an IANA name like "
                         "'Europe/Berlin' or 'UTC'") from None


@dataclass(frozen=True)
class Period:
    """How a budget renews: ``every`` day, week, month or ``seconds`` (a repeating span), or once (a term from
    ``start`` to ``end``, naive times in the hub's zone)."""

    every: str
    seconds: int = 0
    start: datetime | None = None
    end: datetime | None = None

    def bounds(self, now: float, tz: tzinfo) -> tuple[float, float] | None:
        """The period ``now`` is in, as Unix seconds [start, end); None outside a term."""
        local = datetime.fromtimestamp(now, tz)
        if self.every == "term":
            start, end = self.start.replace(tzinfo=tz).timestamp(), self.end.replace(tzinfo=tz).timestamp()
            return (start, end) if start <= now < end else None
        if self.every == "span":
            epoch = datetime(1970, 1, 1, tzinfo=tz).timestamp()
            start = epoch + (now - epoch) // self.seconds * self.seconds
            return start, start + self.seconds
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        if self.every == "day":
            first, last = midnight, midnight + timedelta(days=1)
        elif self.every == "week":
            first = midnight - timedelta(days=midnight.weekday())
            last = first + timedelta(days=7)
        else:
            first = midnight.replace(day=1)
            last = (first + timedelta(days=32)).replace(day=1)
        # Local midnights (a day across a clock change is 23 or 25 hours long).
        return first.replace(tzinfo=tz).timestamp(), last.replace(tzinfo=tz).timestamp()

    def name(self) -> str:
        """"this week", as a sentence says it."""
        if self.every == "span":
            count, unit = _span(self.seconds)
            return f"in this {count}-{unit} period"
        return {"day": "today", "week": "this week", "month": "this month", "term": "this term"}[self.every]

    def renewal(self, end: float, tz: tzinfo) -> str:
        """When what is left renews: "renews Monday 00:00 UTC"; a term does not ("the term ends ...")."""
        local = datetime.fromtimestamp(end, tz)
        at = f"{local:%H:%M} {local.tzname()}"
        if self.every == "term":
            return f"the term ends {local:%Y-%m-%d} {at}"
        if self.every == "week":
            return f"renews {local:%A} {at}"
        if self.every in ("day", "span") and end - datetime.now(tz).timestamp() < 86400:
            return f"renews at {at}"
        return f"renews {local:%Y-%m-%d} {at}"

    def __str__(self) -> str:
        if self.every == "term":
            return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"
        return _span_words(self.seconds) if self.every == "span" else self.every


def _span(seconds: int) -> tuple[int, str]:
    """A span as a count of its largest whole unit: (6, "hour")."""
    unit = next(unit for unit in ("day", "hour", "minute") if seconds % SPAN_SECONDS[unit] == 0)
    return seconds // SPAN_SECONDS[unit], unit


def _span_words(seconds: int) -> str:
    count, unit = _span(seconds)
    return f"{count} {unit}{'s' if count != 1 else ''}"


def hours(value: float) -> str:
    """GPU-hours as a sentence says them, to three figures below ten ("6.5", "0.999", "12.3", "10"), and a test's
    or a slice's small ones to two ("0.0043")."""
    if abs(value) >= 10:
        return f"{value:.1f}".removesuffix(".0")
    if abs(value) >= 0.1:
        return f"{value:.3g}"
    if value == 0:
        return "0"
    # Two figures, never in exponent form ("0.00008", not "8e-05").
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def clock(at: float) -> str:
    """A moment as the hub's pages and log say it: "14:32 UTC"."""
    return time.strftime("%H:%M UTC", time.gmtime(at))


def parse_period(value, where: str = "budget_period") -> Period:
    """A period as a setting says it (see ALLOWED); a ValueError names ``where`` (left out where empty: the
    caller names it), the value and what is allowed."""
    if isinstance(value, Period):
        return value
    if isinstance(value, str):
        if value in PERIODS:
            return Period(value)
        span = SPAN.match(value)
        if span and int(span.group(1)) > 0:
            seconds = int(span.group(1)) * SPAN_SECONDS[span.group(2)]
            if seconds <= 366 * 86400:
                return Period("span", seconds)
    if isinstance(value, dict) and set(value) == {"start", "end"}:
        start, end = _moment(value["start"], where, "start", False), _moment(value["end"], where, "end", True)
        if end <= start:
            raise ValueError(f"{_named(where, value)}the term ends ({end:%Y-%m-%d %H:%M}) before it starts "
                             f"({start:%Y-%m-%d %H:%M}); {ALLOWED}")
        return Period("term", start=start, end=end)
    raise ValueError(f"{_named(where, value)}{ALLOWED}")


def _named(where: str, value) -> str:
    return f"{where} = {value!r}; " if where else ""


def _moment(value, where: str, key: str, end: bool) -> datetime:
    """A term's ``start`` or ``end``: a date (an end date is inclusive: the term ends at the next midnight) or an
    ISO 8601 time without an offset (the hub's zone is the term's)."""
    label = f"{where}[{key!r}]" if where else key
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day) + (timedelta(days=1) if end else timedelta())
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{label} = {value!r}: not a date or time; {ALLOWED}") from None
        if len(str(value).strip()) == 10 and end:
            parsed += timedelta(days=1)
    if parsed.tzinfo is not None:
        raise ValueError(f"{label} = {value!r}: give the time without an offset (it is in the hub's time zone, "
                         "budget_timezone)")
    return parsed


@dataclass(frozen=True)
class Budget:
    """A rule's GPU-hours: ``hours`` for each person, ``together`` for the group's members together (either may
    be None), each ``period``."""

    hours: float | None
    together: float | None
    period: Period

    def __str__(self) -> str:
        def said(value: float) -> str:
            return f"{hours(value)} GPU-hour{'' if value == 1 else 's'}"

        parts = ([f"{said(self.hours)} each"] if self.hours is not None else []) + (
            [f"{said(self.together)} together"] if self.together is not None else [])
        return f"{' and '.join(parts)} per {self.period}"


@dataclass(frozen=True)
class Standing:
    """Where one person stands in one rule's budget now: ``limit`` (with grants) and ``used`` GPU-hours in the
    period [start, end); ``together``: the group's budget, shared by its members."""

    group: str
    together: bool
    limit: float
    used: float
    start: float
    end: float
    period: Period
    tz: tzinfo

    @property
    def left(self) -> float:
        return self.limit - self.used

    def sentence(self) -> str:
        """"6.5 of 10 GPU-hours left this week; renews Monday 00:00 UTC"."""
        whose = f" for group {self.group} together" if self.together else ""
        return (f"{hours(max(0.0, self.left))} of {hours(self.limit)} GPU-hours left{whose} {self.period.name()}; "
                f"{self.period.renewal(self.end, self.tz)}")

    def spent(self) -> str:
        """Why a GPU cannot be had under this rule now: "Your GPU budget this week is used up (10.0 of 10
        GPU-hours); it renews Monday 00:00 UTC"."""
        whose = f"Group {self.group}'s GPU budget" if self.together else "Your GPU budget"
        renewal = self.period.renewal(self.end, self.tz)
        return (f"{whose} {self.period.name()} is used up ({hours(self.used)} of {hours(self.limit)} GPU-hours); "
                f"{renewal if self.period.every == 'term' else 'it ' + renewal}")

    def runs_out(self, now: float, weight: float) -> float:
        """When what is left runs out (ran out, where it is overspent), at ``weight`` whole GPUs held around
        ``now``; infinity where it lasts to the period's end (a new period brings new hours)."""
        at = now + self.left * 3600 / weight if weight > 0 else math.inf
        return at if at < self.end else math.inf


def standing(budget: Budget, group: str, used_by, now: float, tz: tzinfo) -> Standing | None:
    """Where a person under ``group``'s rule stands in ``budget`` at ``now``: the tighter of its per-person and
    together parts (``used_by(together, start, now, end)`` gives GPU-hours used so far and granted in the period); None
    outside a term (no budget then: nothing may be spent)."""
    bounds = budget.period.bounds(now, tz)
    if bounds is None:
        return None
    start, end = bounds
    found = []
    for together, hours in ((False, budget.hours), (True, budget.together)):
        if hours is not None:
            used, granted = used_by(together, start, now, end)
            found.append(Standing(group, together, hours + granted, used, start, end, budget.period, tz))
    return min(found, key=lambda each: each.left) if found else None


def outside_term(budget: Budget, now: float, tz: tzinfo) -> str:
    """Where ``now`` stands outside a budget's term: "term ended 2026-12-20 00:00 UTC" (or "term begins ...")."""
    period = budget.period
    start = period.start.replace(tzinfo=tz).timestamp()
    when = datetime.fromtimestamp(start if now < start else period.end.replace(tzinfo=tz).timestamp(), tz)
    return f"term {'begins' if now < start else 'ended'} {when:%Y-%m-%d %H:%M} {when.tzname()}"


def person_standing(usage, budget: Budget, group: str, name: str, now: float, tz: tzinfo) -> Standing | None:
    """Where ``name``, under ``group``'s rule, stands in its ``budget``, from the usage record ``usage``: a person's
    part counts all their GPU time (under whichever rule) with the hours granted to them and, for each member, to
    the group; the group's part counts its members' holds under its rule with the hours granted to the group."""

    def used_by(together: bool, start: float, now: float, end: float) -> tuple[float, float]:
        if together:
            return usage.gpu_hours(start, now, group=group), usage.granted(start, end, group=group)
        granted = usage.granted(start, end, user=name) + (usage.granted(start, end, group=group) if group else 0)
        return usage.gpu_hours(start, now, user=name), granted

    return standing(budget, group, used_by, now, tz)
