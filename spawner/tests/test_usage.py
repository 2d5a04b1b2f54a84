"""GPU-seconds from the spawner's own reserve and release: the usage record through a spawner's life, a hub
killed and started again, the totals over a range, the CSV and the counter."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from conftest import hub_user
from gpudockerspawner import GPUDockerSpawner
from gpudockerspawner.usage import GONE, STOPPED, Hold, UsageLog, report, report_csv, seconds_by_user, totals


def person(name: str, db, groups=(), **config) -> GPUDockerSpawner:
    return GPUDockerSpawner(user=hub_user(name, groups), **{"gpu_ids": ["0", "1"], "usage_db": str(db), **config})


def test_a_hold_runs_from_reserve_to_release_under_the_rule_that_granted_it(tmp_path):
    db = tmp_path / "usage.sqlite"
    rules = {"staff": {"gpus_per_user": 2}}

    async def scenario():
        ann = person("ann", db, ["staff"], gpu_groups=rules)
        await ann._take_gpus(True)
        (hold,) = ann.usage().holds()
        assert (hold.user, hold.server, hold.group, hold.gpus, hold.ended) == ("ann", "", "staff", ("0", "1"), None)
        ann._release()
        (hold,) = ann.usage().holds()
        assert hold.ended is not None and hold.reason == STOPPED
        # A CPU-only server holds nothing: no row.
        bob = person("bob", db)
        await bob._take_gpus(False)
        assert len(bob.usage().holds()) == 1

    asyncio.run(scenario())


def test_a_hub_killed_and_started_again_loses_no_second_and_counts_none_twice(tmp_path):
    db = tmp_path / "usage.sqlite"
    log = UsageLog(db)
    log.opened("ann/", ["0"], at=1000.0)
    log.opened("bob/", ["1"], at=1000.0)
    log.seen(["ann/", "bob/"], at=1600.0)  # the hub's last poll before it is killed

    # A new hub process: the same file, nothing known alive yet. Ann's server ran on; Bob's ended while no hub watched.
    after = UsageLog(db)
    after.resumed("ann/", ["0"])
    after.resumed("bob/", ["1"])
    after.seen(["ann/"], at=2000.0)  # the hub's check at start finds Ann's running
    after.closed("bob/", at=2000.0)  # and Bob's gone: closed at his last sign of life
    after.closed("ann/", at=2500.0)
    holds = {h.user: h for h in after.holds(0, 3000)}
    assert (holds["ann"].started, holds["ann"].ended, holds["ann"].reason) == (1000.0, 2500.0, STOPPED)
    assert (holds["bob"].started, holds["bob"].ended, holds["bob"].reason) == (1000.0, 1600.0, GONE)
    assert len(after.holds(0, 3000)) == 2


def test_a_hold_from_a_release_that_kept_no_record_starts_when_the_hub_finds_it(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    log.resumed("ann/", ["0"], group="staff")
    (hold,) = log.holds()
    assert hold.ended is None and hold.group == "staff"
    log.resumed("ann/", ["0"])  # again: still one
    assert len(log.holds()) == 1


def test_a_cullers_reason_is_kept_with_the_hold_it_ends(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    log.opened("ann/", ["0"])
    # Another process (the culler) says why, before the hub stops the server.
    assert UsageLog(log.path).note_reason("ann/", "culled: its GPU was idle")
    log.closed("ann/")
    assert log.last_ended("ann").reason == "culled: its GPU was idle"
    assert not UsageLog(log.path).note_reason("ann/", "late")  # no open hold: nothing changes


def test_totals_by_user_group_and_gpu_clip_each_hold_to_the_range(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    log.opened("ann/", ["0", "1"], group="staff", at=0.0)
    log.closed("ann/", at=3600.0)
    log.opened("bob/train", ["1"], at=1800.0)
    log.closed("bob/train", at=9000.0)
    log.opened("cat/", ["0"], node="node-a", at=7000.0)
    holds = log.holds(1800.0, 7200.0)
    assert [h.user for h in holds] == ["ann", "bob", "cat"]
    assert totals(holds, 1800.0, 7200.0) == {
        "users": {"ann": 3600.0, "bob": 5400.0, "cat": 200.0},  # ann: 1800 s on two GPUs
        "groups": {"": 5600.0, "staff": 3600.0},
        "gpus": {"0": 1800.0, "1": 7200.0, "node-a/0": 200.0},
        # Whole GPUs of no kind said: weighted as they are.
        "weighted": {"users": {"ann": 3600.0, "bob": 5400.0, "cat": 200.0}, "groups": {"": 5600.0, "staff": 3600.0}},
    }
    assert log.holds(9500.0, 9600.0)[0].user == "cat"  # still holding
    rows = list(csv.DictReader(io.StringIO(report_csv(holds, 1800.0, 7200.0))))
    assert [(r["user"], r["gpus"], r["gpu_seconds"]) for r in rows] == [
        ("ann", "0 1", "3600.0"), ("bob", "1", "5400.0"), ("cat", "0", "200.0")]
    assert rows[0]["started"] == "1970-01-01T00:00:00Z" and rows[2]["ended"] == ""
    assert report(holds, 1800.0, 7200.0)["holds"][1]["gpu_seconds"] == 5400.0


@pytest.mark.parametrize("name", ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_a_name_a_spreadsheet_would_run_as_a_formula_reaches_the_csv_as_text(tmp_path, name):
    log = UsageLog(tmp_path / "usage.sqlite")
    log.opened(f"{name}/{name}", ["0"], group=name, at=0.0)
    log.note_reason(f"{name}/{name}", name)
    log.closed(f"{name}/{name}", at=60.0)
    (row,) = csv.DictReader(io.StringIO(report_csv(log.holds(0.0, 60.0), 0.0, 60.0)))
    assert (row["user"], row["server"], row["group"], row["reason"]) == ("'" + name,) * 4
    assert row["gpu_seconds"] == "60.0", "numbers stay numbers"


def test_open_holds_are_read_without_the_closed_ones(tmp_path):
    log = UsageLog(tmp_path / "usage.sqlite")
    for n in range(50):
        log.opened(f"old{n}/", ["0"], at=float(n))
        log.closed(f"old{n}/", at=n + 0.5)
    log.opened("ann/", ["1"], at=100.0)
    log.opened("ben/x", ["0"], at=90.0)
    assert [(h.user, h.server) for h in log.open_holds()] == [("ben", "x"), ("ann", "")]
    connection = log._connect()
    plan = " ".join(str(row) for row in connection.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM holds INDEXED BY holds_open WHERE ended IS NULL"))
    assert "USING INDEX holds_open" in plan, plan  # the partial index of open rows, never the whole table


def test_the_counter_sums_every_hold_since_the_record_began(tmp_path):
    db = tmp_path / "usage.sqlite"
    assert seconds_by_user(db) == {}
    log = UsageLog(db)
    log.opened("ann/", ["0", "1"], at=100.0)
    log.closed("ann/", at=200.0)
    log.opened("ann/two", ["0"], at=300.0)
    assert seconds_by_user(db, now=400.0) == {"ann": 300.0}
    # The share counter: a MIG slice's seconds count its part of a whole GPU.
    log.opened("bob/", ["MIG-a"], at=0.0, kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb", share=0.25)
    assert seconds_by_user(db, now=400.0, weighted=True) == {"ann": 300.0, "bob": 100.0}
    assert seconds_by_user(db, now=400.0)["bob"] == 400.0


def test_a_hub_started_after_its_servers_containers_went_closes_their_holds_at_their_last_sign_of_life(tmp_path):
    db = tmp_path / "usage.sqlite"
    log = UsageLog(db)
    log.opened("ann/", ["0"], at=1000.0)
    log.seen(["ann/"], at=1600.0)
    # A new hub (a restore onto a fresh host): the state names GPU 0, but no container holds it any more.
    ann = person("ann", db)
    ann.load_state({"gpus": ["0"]})
    assert ann.assigned_gpus == []
    (hold,) = ann.usage().holds(0, 3000)
    assert (hold.ended, hold.reason) == (1600.0, GONE)


def test_a_slice_counts_its_share_of_a_gpu_beside_the_raw_hours(tmp_path):
    from test_spawner_config import LAB

    db = tmp_path / "usage.sqlite"
    ann = person("ann", db, gpu_ids=list(LAB), gpu_units=LAB)
    ann.user_options = {"gpu_kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb"}
    bob = person("bob", db, gpu_ids=list(LAB), gpu_units=LAB)
    bob.user_options = {"gpu_kind": "NVIDIA GeForce RTX 4090"}
    for someone in (ann, bob):
        asyncio.run(someone._take_gpus(wants_gpu=True))
    log = UsageLog(db)
    started = {hold.user: hold.started for hold in log.holds()}
    (slice_hold,) = [hold for hold in log.holds() if hold.user == "ann"]
    assert (slice_hold.kind, slice_hold.share) == ("NVIDIA A100-SXM4-80GB MIG 1g.10gb", 0.1429)
    for someone in (ann, bob):
        someone._release()
    hour = {user: since + 3600 for user, since in started.items()}
    sums = totals(log.holds(), min(started.values()), max(hour.values()))
    assert sums["users"]["ann"] < 60 and sums["weighted"]["users"]["ann"] <= sums["users"]["ann"] * 0.1429 + 0.1
    # An hour of each, as the record would have them: the slice weighs a seventh of the whole 4090's.
    an_hour = [Hold(h.user, h.server, h.group, h.node, h.gpus, 0.0, 3600.0, h.reason, h.kind, h.share)
               for h in log.holds()]
    assert totals(an_hour, 0, 3600)["weighted"]["users"] == {"ann": 514.4, "bob": 3600.0}
    assert totals(an_hour, 0, 3600)["users"] == {"ann": 3600.0, "bob": 3600.0}
    rows = list(csv.DictReader(io.StringIO(report_csv(an_hour, 0, 3600))))
    assert [(row["kind"], row["share"], row["weighted_gpu_seconds"]) for row in rows] == [
        ("NVIDIA A100-SXM4-80GB MIG 1g.10gb", "0.1429", "514.4"), ("NVIDIA GeForce RTX 4090", "1", "3600.0")]


def test_a_record_of_an_earlier_release_gains_the_kind_columns_and_keeps_every_second(tmp_path):
    import sqlite3

    db = tmp_path / "usage.sqlite"
    old = sqlite3.connect(db)
    old.executescript("""CREATE TABLE holds (id INTEGER PRIMARY KEY, user TEXT NOT NULL, server TEXT NOT NULL,
        gpu_group TEXT NOT NULL, node TEXT NOT NULL, gpus TEXT NOT NULL, started REAL NOT NULL, seen REAL NOT NULL,
        ended REAL, reason TEXT);
        INSERT INTO holds (user, server, gpu_group, node, gpus, started, seen, ended, reason)
        VALUES ('ann', '', '', '', 'GPU-a', 0, 3600, 3600, 'stopped');""")
    old.commit()
    old.close()
    (hold,) = UsageLog(db).holds(0, 7200)
    assert (hold.kind, hold.share, hold.seconds(0, 7200), hold.weighted(0, 7200)) == ("", 1.0, 3600.0, 3600.0)
