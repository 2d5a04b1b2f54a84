"""What JupyterLab's GPU view costs the GPU service: one server's ``api/me`` beside the GPU page's own API
(``api/gpus``, an admin's view of every GPU), in one run, and what 50 servers with JupyterLab open add per minute.

    .venv/bin/python -m benchmarks.gpu_view [--holds 100000] [--servers 50] [--views 300]

The record: ``--holds`` closed holds of 200 people over the last year (gpu_page's) and ``--servers`` open ones, each
server holding one of as many GPUs, with an hour of 5-second samples each; everyone has a weekly budget of 10
GPU-hours (the costliest case: each answer reads the person's standing). Both APIs are served on loopback by the
service's own handlers, the hub's login stood in for (the person's own token; an admin's for the page's API), the
hub's table of who holds which GPU read once per round as in the service. Printed: time per request (median and
p95 over ``--views`` requests one after another), and the service's busy time per minute for ``--servers`` servers
asking once per 5-second round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from benchmarks.budgets import report
from benchmarks.gpu_page import admin, record
from gpudockerspawner import service
from gpudockerspawner.budget_standings import Budgets
from gpudockerspawner.figures import Figures
from gpudockerspawner.server_view import Stops
from gpudockerspawner.usage import UsageLog

INTERVAL = 5.0
GIB = 2**30


def sampled(servers: int) -> Figures:
    """An hour of samples of ``servers`` GPUs, as the service keeps them."""
    figures = Figures([], interval=INTERVAL, busy_at=5)
    now = time.time()
    for step in range(int(3600 / INTERVAL)):
        at = now - 3600 + step * INTERVAL
        figures.add({"node": "", "gpus": [{"index": str(g), "uuid": str(g), "name": "NVIDIA A100-SXM4-80GB",
                                            "utilization": (g * 7 + step) % 100, "memory_used": 12 * GIB,
                                            "memory_total": 80 * GIB, "at": at} for g in range(servers)]}, at)
    figures.round_at = now
    return figures


def person(name: str):
    def wrap(handler_class):
        class Viewed(handler_class):
            def get_current_user(self):
                return {"name": name, "admin": False, "kind": "user"}

        return Viewed

    return wrap


async def measure(usage: UsageLog, table: dict, servers: int, count: int) -> dict[str, list[float]]:
    async def fetch():
        return table

    figures = sampled(servers)
    app = service.make_app(figures, usage, Budgets({"gpu_hours": 10, "budget_period": "week"}),
                           Stops(gpu_idle_timeout=1800, gpu_idle=True, gpu_max_age=8 * 3600))
    app.settings["round_assignments"] = service.RoundAssignments(fetch, max_age=INTERVAL)
    app.add_handlers(r".*", [("/page-api/", admin(service.FiguresAPI), {}),
                             ("/me/", person("holder3")(service.MeAPI), {})])
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    client, results = AsyncHTTPClient(), {}
    for name, path, expect in (("api/gpus (the page)", "/page-api/", b'"holders"'),
                               ("api/me (a server)", "/me/", b"GPU: A100-SXM4-80GB")):
        taken = []
        for _ in range(count):
            started = time.perf_counter()
            response = await client.fetch(f"http://127.0.0.1:{port}{path}")
            taken.append(time.perf_counter() - started)
            assert expect in response.body, response.body[:300]
        results[name] = taken
    server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=100_000)
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--views", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "gpu-usage.sqlite"
        record(path, options.holds)
        usage = UsageLog(path)
        for gpu in range(8, options.servers):  # record() opened holds for GPUs 0-7
            usage.opened(f"holder{gpu}/", [str(gpu)], at=time.time() - 600)
        table = {"gpus": {str(g): [f"holder{g}/"] for g in range(options.servers)},
                 "servers": [{"user": f"holder{g}", "server": "", "gpus": [str(g)], "ready": True, "node": None}
                             for g in range(options.servers)]}
        results = asyncio.run(measure(usage, table, options.servers, options.views))
    report(f"{options.holds:,} closed holds, {options.servers} servers each holding a GPU with an hour of samples; "
           f"{options.views} requests", results)
    me = statistics.median(results["api/me (a server)"])
    per_minute = options.servers * 60 / INTERVAL
    print(f"{options.servers} servers with JupyterLab open, one question each per {INTERVAL:g} s round: "
          f"{per_minute:.0f} requests a minute, {per_minute * me:.2f} s of the service's time a minute "
          f"({100 * per_minute * me / 60:.1f} % of a core)")


if __name__ == "__main__":
    main()
