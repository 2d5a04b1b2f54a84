"""GPU budgets: periods in the hub's time zone, what counts (weights, a hold across a boundary, grants, a group's
budget shared by its members), which rule a person in several groups uses, what Start and a running server's poll
do at the end, and the form's sentence."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import date, datetime, timezone

import pytest
from tornado.web import HTTPError
from traitlets import TraitError

from conftest import hub_user
from gpudockerspawner import GPUDockerSpawner
from gpudockerspawner.budget_standings import Budgets
from gpudockerspawner.budgets import Budget, Period, Standing, parse_period, standing, zone
from gpudockerspawner.culling import CULLED
from gpudockerspawner.gpu_rules import parse_gpu_groups
from gpudockerspawner.service import read_grant
from gpudockerspawner.usage import UsageLog

UTC = timezone.utc
# Wednesday 2026-12-09 12:00 UTC.
WEDNESDAY = datetime(2026, 12, 9, 12, tzinfo=UTC).timestamp()
MONDAY = datetime(2026, 12, 7, tzinfo=UTC).timestamp()


def test_periods_begin_and_end_at_local_midnights_mondays_and_firsts():
    assert Period("week").bounds(WEDNESDAY, UTC) == (MONDAY, MONDAY + 7 * 86400)
    assert Period("day").bounds(WEDNESDAY, UTC) == (MONDAY + 2 * 86400, MONDAY + 3 * 86400)
    start, end = Period("month").bounds(WEDNESDAY, UTC)
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC).timestamp(), datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    # In Berlin (UTC+1 in December) the week began an hour earlier than in UTC.
    berlin = zone("Europe/Berlin")
    assert Period("week").bounds(WEDNESDAY, berlin)[0] == MONDAY - 3600
    # A day across the clock change in spring is 23 hours long.
    march = datetime(2027, 3, 28, 12, tzinfo=UTC).timestamp()
    start, end = Period("day").bounds(march, berlin)
    assert end - start == 23 * 3600
    # A repeating span counts from midnight: 6-hour periods begin at 12:00 on a Wednesday.
    assert parse_period("6 hours").bounds(WEDNESDAY + 60, UTC) == (WEDNESDAY, WEDNESDAY + 6 * 3600)
    # A term: its end day included; outside it, no period.
    term = parse_period({"start": "2026-12-01", "end": "2026-12-09"})
    assert term.bounds(WEDNESDAY, UTC) == (datetime(2026, 12, 1, tzinfo=UTC).timestamp(), MONDAY + 3 * 86400)
    assert term.bounds(MONDAY + 3 * 86400, UTC) is None


@pytest.mark.parametrize("value, said", [
    ("fortnight", "budget_period = 'fortnight'; allowed: day, week (from Monday), month"),
    ("0 hours", "budget_period = '0 hours'; allowed"),
    ({"start": "2026-12-20", "end": "2026-12-01"}, "the term ends (2026-12-02 00:00) before it starts (2026-12-20"),
    ({"start": "2026-12-01", "end": "soon"}, "budget_period['end'] = 'soon': not a date or time"),
    ({"start": "2026-12-01T00:00+01:00", "end": "2026-12-20"}, "give the time without an offset"),
])
def test_a_period_that_does_not_parse_is_refused_naming_the_key_and_what_is_allowed(value, said):
    with pytest.raises(ValueError) as refused:
        parse_period(value)
    assert said in str(refused.value)


def test_a_groups_budget_is_checked_with_its_rule():
    rules = parse_gpu_groups({"students": {"gpu_hours": 10, "budget_period": "week"}, "staff": {"gpu_hours": 2.5}})
    assert rules == {"students": {"gpu_hours": 10.0, "budget_period": "week"}, "staff": {"gpu_hours": 2.5}}
    with pytest.raises(ValueError, match=r"gpu_groups\['a'\]: budget_period = 'week' but no budget; allowed: "):
        parse_gpu_groups({"a": {"budget_period": "week"}})
    with pytest.raises(ValueError, match=r"gpu_groups\['a'\]: gpu_hours = -1; allowed: a number of hours above 0"):
        parse_gpu_groups({"a": {"gpu_hours": -1}})
    with pytest.raises(ValueError, match=r"gpu_groups\['a'\]: budget_period = 'yearly'; allowed: day"):
        parse_gpu_groups({"a": {"gpu_hours": 1, "budget_period": "yearly"}})
    with pytest.raises(ValueError, match=r"budget_timezone = 'Mars/Olympus': not a time zone"):
        zone("Mars/Olympus")


def test_what_counts_is_each_holds_share_of_a_gpu_clipped_to_the_period(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    # Sunday 23:00 to Monday 01:00, one whole GPU: one hour in last week, one in this.
    log.opened("ann/", ["0"], at=MONDAY - 3600)
    log.closed("ann/", at=MONDAY + 3600)
    # Two MIG 1g.10gb slices of an A100 for 7 hours: 2 × 7 × 1/7 = 2 GPU-hours.
    log.opened("ann/lab", ["MIG-a", "MIG-b"], at=MONDAY + 7200, share=1 / 7)
    log.closed("ann/lab", at=MONDAY + 7200 + 7 * 3600)
    # Still running since Tuesday: counted up to now.
    log.opened("bob/", ["1"], group="phd", at=MONDAY + 86400)
    assert log.gpu_hours(MONDAY, WEDNESDAY, user="ann") == pytest.approx(3.0)
    assert log.gpu_hours(MONDAY - 7 * 86400, MONDAY, user="ann") == pytest.approx(1.0)
    assert log.gpu_hours(MONDAY, WEDNESDAY, user="bob") == pytest.approx(36.0)
    assert log.gpu_hours(MONDAY, WEDNESDAY, group="phd") == pytest.approx(36.0)


def test_a_groups_budget_together_is_shared_by_its_members_and_a_grant_adds_to_the_period_it_is_made_in(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    log.opened("ann/", ["0"], group="phd", at=MONDAY)
    log.closed("ann/", at=MONDAY + 3 * 3600)
    log.opened("bob/", ["1"], group="phd", at=MONDAY)
    log.closed("bob/", at=MONDAY + 4 * 3600)
    log.grant(5, "deadline", "admin", group="phd", at=MONDAY + 3600)
    log.grant(1, "last week's", "admin", user="ann", at=MONDAY - 3600)
    budget = Budget(hours=None, together=10, period=Period("week"))

    def used_by(together, start, now, end):
        return log.gpu_hours(start, now, group="phd"), log.granted(start, end, group="phd")

    found = standing(budget, "phd", used_by, WEDNESDAY, UTC)
    assert (found.used, found.limit, found.left) == (pytest.approx(7.0), 15.0, pytest.approx(8.0))
    assert found.sentence() == "8 of 15 GPU-hours left for group phd together this week; renews Monday 00:00 UTC"
    # Last week's grant is not this week's.
    assert log.granted(MONDAY, WEDNESDAY, user="ann") == 0
    assert [g["note"] for g in log.grants(MONDAY - 7 * 86400, WEDNESDAY)] == ["last week's", "deadline"]


def person(name: str, db, groups=(), **config) -> GPUDockerSpawner:
    return GPUDockerSpawner(user=hub_user(name, groups), **{"gpu_ids": ["0", "1"], "usage_db": str(db), **config})


def around_now() -> dict:
    """A term from yesterday to tomorrow (UTC): holds of the last hours fall in it whatever the time of day."""
    today = datetime.now(UTC).date().toordinal()
    return {"start": date.fromordinal(today - 1).isoformat(), "end": date.fromordinal(today + 1).isoformat()}


def test_someone_in_several_groups_uses_the_most_generous_rule_that_still_has_hours(tmp_path):
    db = tmp_path / "usage.sqlite"
    rules = {"students": {"gpu_hours": 1}, "staff": {"gpus_per_user": 2, "gpu_hours": 3}}
    log = UsageLog(db)
    now = time.time()
    log.opened("ann/", ["0", "1"], group="staff", at=now - 2 * 3600)  # 2 GPUs for 1.5 hours: 3 GPU-hours
    log.closed("ann/", at=now - 1800)

    async def scenario():
        ann = person("ann", db, ["students", "staff"], gpu_groups=rules, budget_period=around_now())
        # Staff's 3 hours are spent (and so are students' 1: a person's budget counts all their GPU time).
        with pytest.raises(HTTPError) as refused:
            await ann._take_gpus(True)
        assert refused.value.jupyterhub_message.startswith(
            "Your GPU budget this term is used up (3 of 3 GPU-hours); the term ends ")
        # A grant of 2 hours to Ann: staff's rule (the more generous) has them, students' rule not.
        ann.usage().grant(2, "paper deadline", "admin", user="ann")
        await ann._take_gpus(True)
        assert (ann.gpu_group, len(ann.assigned_gpus)) == ("staff", 2)

    asyncio.run(scenario())


@pytest.mark.parametrize("on_exhausted", ["refuse", "cpu", "wait"])
def test_a_spent_budget_refuses_starts_cpu_only_or_says_waiting_would_not_help(tmp_path, on_exhausted):
    db = tmp_path / "usage.sqlite"
    log = UsageLog(db)
    log.opened("ann/", ["0"], at=max(time.time() - 7200, Period("week").bounds(time.time(), UTC)[0]))
    log.closed("ann/", at=time.time() + 1)  # at least a second this week, whenever the test runs: 0.0002 spent

    async def scenario():
        ann = person("ann", db, gpu_hours=0.0002, on_exhausted=on_exhausted)
        form = await ann.gpu_availability()
        assert form.budget == "0 of 0.0002 GPU-hours left this week; renews Monday 00:00 UTC"
        assert form.why.startswith("Your GPU budget this week is used up (")
        assert form.can_start() == (on_exhausted == "cpu")
        await ann._take_gpus(True)
        return ann

    if on_exhausted == "cpu":
        ann = asyncio.run(scenario())
        assert ann.assigned_gpus == [] and not ann.gpu_wanted
        return
    with pytest.raises(HTTPError) as refused:
        asyncio.run(scenario())
    said = refused.value.jupyterhub_message
    assert re.match(r"Your GPU budget this week is used up \([0-9.e-]+ of 0\.0002 GPU-hours\); "
                    r"it renews Monday 00:00 UTC\.", said), said
    assert ("Waiting in line would not help" in said) == (on_exhausted == "wait")


def test_a_running_server_is_stopped_at_its_budgets_end_after_the_grace_with_the_reason_kept(tmp_path, caplog):
    db = tmp_path / "usage.sqlite"
    ann = person("ann", db, gpu_hours=1, budget_grace=10, budget_period=around_now())
    ann.assigned_gpus = ["0"]
    ann.usage().opened("ann/", ["0"], at=time.time() - 3600 + 600)  # 50 minutes so far: 10 minutes left
    assert ann._budget_ended() is None
    assert "ann/: 0.167 of 1 GPU-hours left this term" in caplog.text  # warned: 80 % used
    found, runs_out = ann.budget_now()
    assert runs_out == pytest.approx(time.time() + 600, abs=2)
    # 5 minutes past the end: within the grace of 10.
    ann.usage().opened("ann/", ["0"], at=time.time() - 3600 - 300)
    assert ann._budget_ended() is None
    ann.usage().opened("ann/", ["0"], at=time.time() - 3600 - 660)
    reason = ann._budget_ended()
    assert reason == "its GPU budget this term ran out (1.18 of 1 GPU-hours)"
    ann.usage().closed("ann/")
    assert ann.usage().last_ended("ann").reason == CULLED + reason


def test_the_budget_settings_are_traits_that_refuse_what_does_not_parse():
    with pytest.raises(TraitError, match="GPUDockerSpawner.budget_period = 'often'"):
        GPUDockerSpawner(budget_period="often")
    with pytest.raises(TraitError, match="GPUDockerSpawner.budget_timezone = 'Nowhere'"):
        GPUDockerSpawner(budget_timezone="Nowhere")


def test_the_admins_see_each_persons_and_each_groups_standing_and_the_gauges_say_the_same(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    now = time.time()
    term = around_now()
    log.opened("ann/", ["0"], group="students", at=now - 3600)
    log.closed("ann/", at=now)
    log.opened("cat/", ["1"], group="phd", at=now - 7200)
    log.grant(2, "deadline", "admin", group="phd")
    budgets = Budgets({"gpu_groups": {"students": {"gpu_hours": 4}, "phd": {"gpu_hours_together": 10},
                                      "staff": {}}, "budget_period": term, "budget_timezone": "UTC"})
    rows = budgets.rows(log, [{"name": "ann", "groups": ["students"]}, {"name": "bob", "groups": ["staff"]},
                              {"name": "cat", "groups": ["phd"]}], now)
    (ann,) = rows["people"]  # bob's rule has no budget; cat's is the group's
    assert (ann["name"], ann["group"]) == ("ann", "students")
    assert (ann["used"], ann["left"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert ann["budget"].startswith(f"4 GPU-hours each per {term['start']} 00:00 to ")
    (phd,) = rows["groups"]
    assert (phd["name"], phd["limit"], phd["used"], phd["left"]) == ("phd", 12.0, pytest.approx(2.0),
                                                                     pytest.approx(10.0))
    people, groups = budgets.gauges(log, now)
    assert people == {"ann": ("students", 3.0)} and groups == {"phd": pytest.approx(10.0)}


@pytest.mark.parametrize("fields, said", [
    ({"hours": 2}, "name either a user or a group"),
    ({"user": "ann", "group": "phd", "hours": 2}, "name either a user or a group"),
    ({"user": "ann", "hours": -2}, "hours = -2; allowed: a number above 0, at most 10000"),
    ({"user": "ann", "hours": "lots"}, "hours = 'lots'; allowed"),
    ({"user": "ann", "hours": 1, "note": "x" * 501}, "the note is 501 characters long; allowed: at most 500"),
])
def test_a_grant_that_says_too_little_or_too_much_is_refused_with_what_is_allowed(fields, said):
    with pytest.raises(HTTPError) as refused:
        read_grant(fields)
    assert refused.value.status_code == 400 and said in refused.value.log_message
    assert read_grant({"group": "phd", "hours": "2.5", "note": "deadline"}) == {
        "user": "", "group": "phd", "hours": 2.5, "note": "deadline"}


def test_a_budget_that_lasts_until_its_period_renews_never_runs_out_and_stops_nothing():
    start, end = Period("week").bounds(WEDNESDAY, UTC)
    found = Standing("", False, 10, 9.9, start, end, Period("week"), UTC)  # 0.1 GPU-hours (6 minutes) left
    # An hour before the week ends, at one GPU: out in 6 minutes. A minute before: the new week comes first.
    assert found.runs_out(end - 3600, 1) == end - 3600 + 360
    assert found.runs_out(end - 60, 1) == math.inf
    # At two whole GPUs' pace, twice as fast; holding nothing, never.
    assert found.runs_out(end - 3600, 2) == end - 3600 + 180 and found.runs_out(end - 3600, 0) == math.inf
