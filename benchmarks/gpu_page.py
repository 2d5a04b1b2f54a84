"""What a view of the GPU page costs with a lab's year of GPU-hours: before and now, side by side, in one run.

    .venv/bin/python -m benchmarks.gpu_page [--holds 100000] [--views 200]

A usage record with ``--holds`` closed holds (200 people over a year) and 8 open ones, and the GPU service's page
served on loopback by the service's own handler, its hub login stood in for (an admin's view: every row). Before:
each view read every hold ever recorded to find the open ones, and asked the hub who holds which GPU. Now: the open
holds through their index, and the hub asked once per sampling round (5 s), whatever the number of views. Printed:
the page's time per view (median and p95 over ``--views`` views one after another) and the hub questions those
views made; the hub's own answer time is not part of it (it is the same question either way).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gpudockerspawner import service
from gpudockerspawner.figures import Figures
from gpudockerspawner.usage import UsageLog

YEAR = 365 * 86400
OPEN = 8


def record(path: Path, holds: int) -> dict:
    """``holds`` closed holds of 200 people over the last year, and OPEN open ones; the hub's table for them."""
    now = time.time()
    rows = []
    chance = random.Random(7)
    for n in range(holds):
        started = now - YEAR + n * (YEAR / holds)
        rows.append((f"person{chance.randrange(200)}", "", "", "", str(n % 8), started, started + 3600,
                     started + 3600, "stopped"))
    log = UsageLog(path)
    connection = log._connect()
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO holds (user, server, gpu_group, node, gpus, started, seen, ended, reason) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.execute("COMMIT")
    connection.close()
    for gpu in range(OPEN):
        log.opened(f"holder{gpu}/", [str(gpu)], at=now - 600)
    return {"gpus": {str(g): [f"holder{g}/"] for g in range(OPEN)},
            "servers": [{"user": f"holder{g}", "server": "", "gpus": [str(g)], "ready": True, "node": None}
                        for g in range(OPEN)]}


class Before(service.GPUPage):
    """The page as it was: every hold read for the open ones, the hub asked at each view."""

    def open_holds(self) -> dict[str, float]:
        return {f"{h.user}/{h.server}": h.started for h in self.usage.holds() if h.ended is None}


def admin(handler_class):
    class Viewed(handler_class):
        def get_current_user(self):
            return {"name": "admin", "admin": True, "kind": "user"}

    return Viewed


async def views(port: int, path: str, count: int) -> list[float]:
    client = AsyncHTTPClient()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.fetch(f"http://127.0.0.1:{port}{path}")
        seconds.append(time.perf_counter() - started)
        assert b"holder7/" in response.body, "the page shows the open holds"
    return seconds


async def measure(usage: UsageLog, table: dict, count: int) -> dict:
    asked = {"before": 0, "now": 0}

    def counted(name):
        async def fetch():
            asked[name] += 1
            return table

        return fetch

    figures = Figures([], interval=5, busy_at=5)
    app = service.make_app(figures, usage)
    app.settings["round_assignments"] = service.RoundAssignments(counted("now"), max_age=figures.interval)
    before_round = service.RoundAssignments(counted("before"), max_age=0)  # no sharing: one question per view
    app.add_handlers(r".*", [("/before/", admin(Before), {}), ("/now/", admin(service.GPUPage), {})])
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    results = {}
    rounds = {"before": before_round, "now": app.settings["round_assignments"]}
    for name in ("before", "now"):
        app.settings["round_assignments"] = rounds[name]
        results[name] = await views(port, f"/{name}/", count)
    server.stop()
    return {name: (results[name], asked[name]) for name in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "gpu-usage.sqlite"
        table = record(path, options.holds)
        print(f"usage record: {options.holds:,} closed holds, {OPEN} open, {path.stat().st_size / 2**20:.1f} MiB")
        results = asyncio.run(measure(UsageLog(path), table, options.views))
    print(f"{'':8} {'median ms':>10} {'p95 ms':>8} {'hub questions':>14}   ({options.views} views)")
    for name, (seconds, asked) in results.items():
        ordered = sorted(seconds)
        print(f"{name:8} {statistics.median(ordered) * 1000:10.2f} {ordered[int(0.95 * len(ordered))] * 1000:8.2f} "
              f"{asked:14}")
    ratio = statistics.median(results["now"][0]) / statistics.median(results["before"][0])
    print(f"ratio now/before (median): {ratio:.3f}")


if __name__ == "__main__":
    main()
