"""What GPU budgets cost with a lab's year of GPU-hours: the admins' GPU-hours page with budgets beside the same page
without, and one person's standing (what the spawn form, a start and each poll of a running server ask) with the
record's per-person index beside a read of the same record without it; side by side, in one run.

    .venv/bin/python -m benchmarks.budgets [--holds 100000] [--views 50]

The record: ``--holds`` closed holds of 200 people over the last year (gpu_page's) and 8 open ones; everyone has a
weekly budget of 10 GPU-hours. The page is served on loopback by the service's own handler, its hub login and the
hub's list of people stood in for (an admin's view). Printed: the page's time per view and the standing's time per
question (median and p95).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timezone
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from benchmarks.gpu_page import admin, record
from gpudockerspawner import service
from gpudockerspawner.budget_standings import Budgets
from gpudockerspawner.budgets import Budget, Period, person_standing
from gpudockerspawner.usage import UsageLog

PEOPLE = [{"name": f"person{n}", "groups": []} for n in range(200)]
SETTINGS = {"gpu_hours": 10, "budget_period": "week", "budget_timezone": "UTC"}


async def page_views(usage: UsageLog, count: int) -> dict[str, list[float]]:
    async def people():
        return PEOPLE

    service.people = people  # the hub's answer, stood in (its own time is not the accounting's)
    app = service.make_app(None, usage, Budgets(SETTINGS))
    bare = service.make_app(None, usage, None)
    app.add_handlers(r".*", [("/with/", admin(service.UsagePage), {})])
    bare.add_handlers(r".*", [("/without/", admin(service.UsagePage), {})])
    seconds = {}
    for name, application in (("without budgets", bare), ("with budgets", app)):
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(application)
        server.add_sockets(sockets)
        port, path = sockets[0].getsockname()[1], "/with/" if application is app else "/without/"
        client, taken = AsyncHTTPClient(), []
        for _ in range(count):
            started = time.perf_counter()
            response = await client.fetch(f"http://127.0.0.1:{port}{path}?since=0")
            taken.append(time.perf_counter() - started)
            assert (b"budget-people" in response.body) == (application is app)
        server.stop()
        seconds[name] = taken
    return seconds


def standings(path: Path, count: int) -> dict[str, list[float]]:
    budget = Budget(10, None, Period("week"))
    seconds = {}
    for name in ("without the index", "with the index"):
        usage = UsageLog(path)
        connection = usage._connect()
        if name == "without the index":
            connection.execute("DROP INDEX IF EXISTS holds_user_end")
        connection.close()
        taken = []
        for n in range(count):
            started = time.perf_counter()
            person_standing(usage, budget, "", f"person{n % 200}", time.time(), timezone.utc)
            taken.append(time.perf_counter() - started)
        seconds[name] = taken  # the next UsageLog makes the index again (CREATE INDEX IF NOT EXISTS)
    return seconds


def report(title: str, results: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'':20} {'median ms':>10} {'p95 ms':>8}")
    for name, seconds in results.items():
        ordered = sorted(seconds)
        print(f"{name:20} {statistics.median(ordered) * 1000:10.2f} {ordered[int(0.95 * len(ordered))] * 1000:8.2f}")
    first, second = (statistics.median(seconds) for seconds in results.values())
    print(f"ratio (median): {second / first:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "gpu-usage.sqlite"
        record(path, options.holds)
        print(f"usage record: {options.holds:,} closed holds of 200 people over a year, "
              f"{path.stat().st_size / 2**20:.1f} MiB")
        report("one person's standing (form, start, each poll)", standings(path, options.views * 10))
        report("the GPU-hours page, a year's range, 200 people", asyncio.run(page_views(UsageLog(path), options.views)))


if __name__ == "__main__":
    main()
