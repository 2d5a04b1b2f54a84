"""GPU-seconds: who held which GPUs, from when to when, and why each hold ended.

GPUDockerSpawner (and its Swarm subclass) writes one row when a server's GPUs are reserved for it and closes the
row when they are released: the spawners' own records of reserve and release, in a SQLite file on the hub's data
volume (``gpu-usage.sqlite``, beside the hub's database, backed up and restored with it). Each poll of a server that
finds it running (every poll_interval, 30 s by default) marks its open row seen; a server that ended while the hub was
down (a crash, a host restart) is closed at its last sign of life, not at the hub's return, and one that ran on
through the restart keeps its row open: no second is lost and none is counted twice.

The GPU service reads the same file for its usage page and API; the hub's metrics read it for
``jupyterhub_gpu_seconds_total``. Rows are never deleted: a counter read from them only grows.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    server TEXT NOT NULL,
    gpu_group TEXT NOT NULL,
    node TEXT NOT NULL,
    gpus TEXT NOT NULL,
    started REAL NOT NULL,
    seen REAL NOT NULL,
    ended REAL,
    reason TEXT,
    kind TEXT NOT NULL DEFAULT '',
    share REAL NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS holds_open ON holds (user, server) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS holds_time ON holds (started, ended);
CREATE INDEX IF NOT EXISTS holds_user_end ON holds (user, ended);
CREATE INDEX IF NOT EXISTS holds_group_end ON holds (gpu_group, ended);
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL DEFAULT '',
    gpu_group TEXT NOT NULL DEFAULT '',
    hours REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    granted_by TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_at ON grants (at);
"""
# A hold's GPU-seconds within [:since, :until), weighted by each GPU's share of a whole GPU (budgets.py).
WEIGHTED_SECONDS = ("(MIN(COALESCE(ended, :until), :until) - MAX(started, :since)) "
                    "* (LENGTH(gpus) - LENGTH(REPLACE(gpus, ',', '')) + 1) * share")
# Columns added since the first release, for files made by it: (name, declaration). Their defaults are what every
# earlier hold was: whole GPUs of no kind said.
ADDED_COLUMNS = (("kind", "TEXT NOT NULL DEFAULT ''"), ("share", "REAL NOT NULL DEFAULT 1"))
# Why a hold ended, where the spawner knows nothing more specific (a culler may have said why first).
STOPPED = "stopped"
GONE = "ended while the hub was down"


@dataclass(frozen=True)
class Hold:
    user: str
    server: str
    group: str
    node: str
    gpus: tuple[str, ...]
    started: float
    ended: float | None
    reason: str | None
    kind: str = ""  # the kind of its GPUs ("NVIDIA A100-SXM4-80GB MIG 1g.10gb"; "" where none was said)
    share: float = 1.0  # each GPU's part of a whole GPU (a 1g MIG slice of an A100: 1/7)

    def seconds(self, since: float, until: float) -> float:
        """GPU-seconds of this hold within [since, until): its time there times its GPUs."""
        end = until if self.ended is None else min(self.ended, until)
        return max(0.0, end - max(self.started, since)) * len(self.gpus)

    def weighted(self, since: float, until: float) -> float:
        """Its GPU-seconds weighted by each GPU's share of a whole one: what compares a slice with a whole GPU."""
        return self.seconds(since, until) * self.share

    def gpu_keys(self) -> list[str]:
        return [f"{self.node}/{gpu}" if self.node else gpu for gpu in self.gpus]


def split_owner(owner: str) -> tuple[str, str]:
    user, _, server = owner.partition("/")
    return user, server


class UsageLog:
    """The holds in one SQLite file. Each call opens and closes its own connection: the hub, the GPU service and
    the cullers are separate processes, and a write takes a millisecond."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # The holds this process has seen alive (opened here, or found running by the hub's check at start).
        self.alive: set[str] = set()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        if not self._ready:
            connection.executescript(SCHEMA)
            have = {row[1] for row in connection.execute("PRAGMA table_info(holds)")}
            for name, declaration in ADDED_COLUMNS:
                if name not in have:  # a file of an earlier release: its holds keep every second, now of a kind
                    connection.execute(f"ALTER TABLE holds ADD COLUMN {name} {declaration}")
            self._ready = True
        return connection

    def _write(self, sql: str, parameters: Iterable = ()) -> int:
        connection = self._connect()
        try:
            return connection.execute(sql, tuple(parameters)).rowcount
        finally:
            connection.close()

    def opened(self, owner: str, gpus: Iterable[str], group: str = "", node: str = "", at: float | None = None,
               kind: str = "", share: float = 1.0) -> None:
        """``owner`` (user/server) holds ``gpus`` (of ``kind``, each ``share`` of a whole GPU) from now; any hold of
        its own left open is closed first."""
        at = time.time() if at is None else at
        self.closed(owner, at=at)
        user, server = split_owner(owner)
        self._write("INSERT INTO holds (user, server, gpu_group, node, gpus, started, seen, kind, share) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (user, server, group, node, ",".join(gpus), at, at, kind, share))
        self.alive.add(owner)

    def resumed(self, owner: str, gpus: Iterable[str], group: str = "", node: str = "", kind: str = "",
                share: float = 1.0) -> None:
        """The hub, starting, found ``owner``'s GPUs in its state: its hold goes on (opened here if the file has no
        open row for it, as after an upgrade from a release that kept none). Not yet known alive: see ``seen``."""
        user, server = split_owner(owner)
        connection = self._connect()
        try:
            found = connection.execute("SELECT 1 FROM holds WHERE user = ? AND server = ? AND ended IS NULL",
                                       (user, server)).fetchone()
            if not found:
                now = time.time()
                connection.execute("INSERT INTO holds (user, server, gpu_group, node, gpus, started, seen, kind, "
                                   "share) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   (user, server, group, node, ",".join(gpus), now, now, kind, share))
        finally:
            connection.close()

    def seen(self, owners: Iterable[str], at: float | None = None) -> None:
        """``owners``' servers are running now."""
        at = time.time() if at is None else at
        owners = list(owners)
        self.alive.update(owners)
        if not owners:
            return
        connection = self._connect()
        try:
            connection.execute("BEGIN")  # one transaction for all
            connection.executemany("UPDATE holds SET seen = ? WHERE user = ? AND server = ? AND ended IS NULL",
                                   [(at, *split_owner(owner)) for owner in owners])
            connection.execute("COMMIT")
        finally:
            connection.close()

    def note_reason(self, owner: str, reason: str) -> bool:
        """Why ``owner``'s hold is about to end (a culler says so before it stops the server); kept when it ends."""
        return bool(self._write("UPDATE holds SET reason = ? WHERE user = ? AND server = ? AND ended IS NULL",
                                (reason, *split_owner(owner))))

    def closed(self, owner: str, reason: str = STOPPED, at: float | None = None) -> None:
        """``owner`` holds no GPU from now: at ``at`` if this process saw it alive, else at its last sign of life
        (it ended while no hub watched)."""
        at = time.time() if at is None else at
        user, server = split_owner(owner)
        if owner in self.alive:
            self._write("UPDATE holds SET ended = MAX(started, ?), reason = COALESCE(reason, ?) "
                        "WHERE user = ? AND server = ? AND ended IS NULL", (at, reason, user, server))
        else:
            self._write("UPDATE holds SET ended = seen, reason = COALESCE(reason, ?) "
                        "WHERE user = ? AND server = ? AND ended IS NULL", (GONE, user, server))
        self.alive.discard(owner)

    def _select(self, rest: str, parameters: Iterable = ()) -> list[Hold]:
        """The holds ``SELECT ... FROM holds <rest>`` finds (none where the file is not there yet)."""
        if not self.path.exists():
            return []
        connection = self._connect()
        try:
            rows = connection.execute("SELECT user, server, gpu_group, node, gpus, started, ended, reason, kind, "
                                      "share "
                                      f"FROM holds {rest}", tuple(parameters)).fetchall()
        finally:
            connection.close()
        return [Hold(user, server, group, node, tuple(g for g in gpus.split(",") if g), started, ended, reason, kind,
                     share)
                for user, server, group, node, gpus, started, ended, reason, kind, share in rows]

    def holds(self, since: float = 0.0, until: float | None = None) -> list[Hold]:
        """Holds that overlap [since, until), oldest first."""
        until = time.time() if until is None else until
        return self._select("WHERE started < ? AND (ended IS NULL OR ended > ?) ORDER BY started, id", (until, since))

    def open_holds(self) -> list[Hold]:
        """The holds not ended yet, oldest first: read through the partial index of open rows, so that the years
        of closed holds a lab keeps cost nothing here."""
        return self._select("INDEXED BY holds_open WHERE ended IS NULL ORDER BY started, id")

    def gpu_hours(self, since: float, until: float, user: str | None = None, group: str | None = None) -> float:
        """Weighted GPU-hours within [since, until) of ``user``'s holds (any group's), or of the holds granted
        under ``group``'s rule (all its members'); summed by SQLite over the holds of that user or group only."""
        if not self.path.exists():
            return 0.0
        column, value = ("user", user) if user is not None else ("gpu_group", group)
        connection = self._connect()
        try:
            (seconds,) = connection.execute(
                f"SELECT COALESCE(SUM({WEIGHTED_SECONDS}), 0) FROM holds WHERE {column} = :value AND gpus != '' "
                "AND (ended IS NULL OR ended > :since) AND started < :until",
                {"value": value, "since": since, "until": until}).fetchone()
        finally:
            connection.close()
        return max(0.0, seconds) / 3600

    def grant(self, hours: float, note: str, by: str, user: str = "", group: str = "",
              at: float | None = None) -> None:
        """Extra GPU-hours for ``user``, or for ``group`` (each member, or the members together, as the group's
        budget counts), in the periods that ``at`` (now) falls in."""
        self._write("INSERT INTO grants (user, gpu_group, hours, note, granted_by, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (user, group, hours, note, by, time.time() if at is None else at))

    def granted(self, since: float, until: float, user: str | None = None, group: str | None = None) -> float:
        """Hours granted within [since, until) to ``user`` (to them alone), or to ``group``."""
        if not self.path.exists():
            return 0.0
        connection = self._connect()
        try:
            (hours,) = connection.execute(
                "SELECT COALESCE(SUM(hours), 0) FROM grants WHERE at >= ? AND at < ? AND "
                + ("user = ?" if user is not None else "user = '' AND gpu_group = ?"),
                (since, until, user if user is not None else group)).fetchone()
        finally:
            connection.close()
        return hours

    def grants(self, since: float, until: float) -> list[dict]:
        """The grants made within [since, until), oldest first."""
        if not self.path.exists():
            return []
        connection = self._connect()
        try:
            rows = connection.execute("SELECT user, gpu_group, hours, note, granted_by, at FROM grants "
                                      "WHERE at >= ? AND at < ? ORDER BY at, id", (since, until)).fetchall()
        finally:
            connection.close()
        return [{"user": user, "group": group, "hours": hours, "note": note, "by": by, "at": at}
                for user, group, hours, note, by, at in rows]

    def last_ended(self, user: str, server: str = "") -> Hold | None:
        """The most recent closed hold of one server."""
        found = self._select("WHERE user = ? AND server = ? AND ended IS NOT NULL ORDER BY ended DESC LIMIT 1",
                             (user, server))
        return found[0] if found else None


def totals(holds: Iterable[Hold], since: float, until: float) -> dict:
    """GPU-seconds by user, by group (the rule that granted them; "" for the default) and by GPU; and by user and by
    group weighted by each GPU's share of a whole one (``weighted``: a MIG slice's hour counts its share)."""
    by_user, by_group, by_gpu = defaultdict(float), defaultdict(float), defaultdict(float)
    weighted_user, weighted_group = defaultdict(float), defaultdict(float)
    for hold in holds:
        seconds, weighted = hold.seconds(since, until), hold.weighted(since, until)
        by_user[hold.user] += seconds
        by_group[hold.group] += seconds
        weighted_user[hold.user] += weighted
        weighted_group[hold.group] += weighted
        for key in hold.gpu_keys():
            by_gpu[key] += seconds / len(hold.gpus)

    def rounded(table):
        return {key: round(value, 1) for key, value in sorted(table.items())}

    return {"users": rounded(by_user), "groups": rounded(by_group), "gpus": rounded(by_gpu),
            "weighted": {"users": rounded(weighted_user), "groups": rounded(weighted_group)}}


def report(holds: list[Hold], since: float, until: float) -> dict:
    """The usage API's JSON: the range, the totals, and each hold clipped to the range."""
    return {
        "since": since,
        "until": until,
        "gpu_seconds": totals(holds, since, until),
        "holds": [{"user": h.user, "server": h.server, "group": h.group, "node": h.node, "gpus": list(h.gpus),
                   "started": h.started, "ended": h.ended, "reason": h.reason, "kind": h.kind, "share": h.share,
                   "gpu_seconds": round(h.seconds(since, until), 1),
                   "weighted_gpu_seconds": round(h.weighted(since, until), 1)} for h in holds],
    }


CSV_COLUMNS = ["user", "server", "group", "node", "gpus", "started", "ended", "reason", "gpu_seconds", "kind", "share",
               "weighted_gpu_seconds"]


# What a spreadsheet takes for the start of a formula (OWASP's list): a cell that begins with one is read as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(cell: str) -> str:
    """``cell`` as a spreadsheet shows it and never runs it: names come from sign-up forms and identity
    providers, and a name like ``=HYPERLINK(...)`` would be a formula in the admin's spreadsheet."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def report_csv(holds: list[Hold], since: float, until: float) -> str:
    """One line per hold, times in ISO 8601 (UTC), GPU-seconds within the range; text cells never formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for h in holds:
        writer.writerow([as_text(h.user), as_text(h.server), as_text(h.group), as_text(h.node),
                         as_text(" ".join(h.gpus)), _iso(h.started), _iso(h.ended) if h.ended is not None else "",
                         as_text(h.reason or ""), f"{h.seconds(since, until):.1f}", as_text(h.kind), f"{h.share:g}",
                         f"{h.weighted(since, until):.1f}"])
    return out.getvalue()


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def seconds_by_user(path: str | Path, now: float | None = None, weighted: bool = False) -> dict[str, float]:
    """Every user's GPU-seconds since the file began (the metrics' counters), summed by SQLite; ``weighted``: each
    GPU's seconds times its share of a whole GPU."""
    if not Path(path).exists():
        return {}
    now = time.time() if now is None else now
    connection = UsageLog(path)._connect()
    try:
        rows = connection.execute(
            "SELECT user, SUM((COALESCE(ended, ?) - started) * (LENGTH(gpus) - LENGTH(REPLACE(gpus, ',', '')) + 1)"
            f"{' * share' if weighted else ''}) FROM holds WHERE gpus != '' GROUP BY user ORDER BY user",
            (now,)).fetchall()
    finally:
        connection.close()
    return {user: max(0.0, seconds) for user, seconds in rows}
