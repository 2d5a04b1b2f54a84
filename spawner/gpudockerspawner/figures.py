"""The GPUs' figures as the hub sees them: the samplers read every few seconds, the last hour of each GPU's
utilisation kept, and when each was last busy.

The GPU service (which runs beside the hub) owns this. After each round it writes a snapshot (``FIGURES_FILE``),
atomically, for the hub's Prometheus gauges and for the idle cullers' judgement of GPU idleness: they run in
other processes of the hub's container and read it, never the samplers.

Each GPU is known by its UUID on one host, by ``<node>/<UUID>`` on a cluster (GPU ids are per node); the
servers' records may name a GPU by its index instead, so each figure carries both (see ``key_for``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

HOUR = 3600


def gpu_key(node: str, gpu: str) -> str:
    return f"{node}/{gpu}" if node else gpu


class Figures:
    """Polls ``samplers`` (URLs; a name that resolves to several addresses, as Swarm's ``tasks.<service>`` does,
    is every one of them) every ``interval`` seconds. A GPU counts as busy in a sample at ``busy_at`` percent
    utilisation or more."""

    def __init__(self, samplers: list[str], interval: float, busy_at: float, on_nodes: bool = False,
                 snapshot_file: str | Path | None = None):
        self.samplers = samplers
        self.interval = interval
        self.busy_at = busy_at
        self.on_nodes = on_nodes
        self.snapshot_file = Path(snapshot_file) if snapshot_file else None
        self.latest: dict[str, dict] = {}
        self.history: dict[str, deque] = {}
        self.last_busy: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self.errors: list[str] = []
        self.round_at = 0.0

    def add(self, report: dict, received: float) -> None:
        """One sampler's report."""
        node = report.get("node") or ""
        for sample in report.get("gpus", []):
            key = gpu_key(node if self.on_nodes else "", sample["uuid"])
            at = sample.get("at") or received
            self.latest[key] = {**sample, "node": node, "key": key}
            self.first_seen.setdefault(key, at)
            history = self.history.setdefault(key, deque(maxlen=int(HOUR / self.interval) + 1))
            if not history or history[-1][0] < at:
                history.append((at, sample.get("utilization"), memory_percent(sample)))
            if is_busy(sample, self.busy_at):
                self.last_busy[key] = at
        if report.get("error"):
            self.errors.append(f"{node}: {report['error']}")

    async def _addresses(self, url: str) -> list[str]:
        parts = urlsplit(url)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            self.errors.append(f"{parts.hostname}: {error.strerror}")
            return []
        addresses = sorted({info[4][0] for info in infos})
        return [urlunsplit(parts._replace(netloc=f"{address}:{parts.port}" if ":" not in address
                                          else f"[{address}]:{parts.port}")) for address in addresses]

    async def poll(self) -> None:
        """One round: every sampler asked at once."""
        self.errors = []
        urls = [address for url in self.samplers for address in await self._addresses(url)]
        client = AsyncHTTPClient()

        async def ask(url: str) -> None:
            try:
                response = await client.fetch(url, request_timeout=max(2.0, self.interval))
            except (HTTPClientError, OSError) as error:
                self.errors.append(f"{url}: {error}")
                return
            self.add(json.loads(response.body), time.time())

        await asyncio.gather(*(ask(url) for url in urls))
        self.round_at = time.time()
        self.write_snapshot()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll()
            except Exception as error:  # noqa: BLE001 - the service goes on; the next round may do better
                self.errors.append(f"round failed: {error!r}")
            await asyncio.sleep(max(0.5, self.interval - (time.monotonic() - started)))

    def snapshot(self) -> dict:
        return {
            "at": self.round_at,
            "interval": self.interval,
            "busy_at": self.busy_at,
            "errors": self.errors,
            "gpus": {key: {**figure, "last_busy": self.last_busy.get(key), "first_seen": self.first_seen[key]}
                     for key, figure in sorted(self.latest.items())},
        }

    def write_snapshot(self) -> None:
        if self.snapshot_file is None:
            return
        partial = self.snapshot_file.with_name(self.snapshot_file.name + ".partial")
        partial.write_text(json.dumps(self.snapshot()))
        os.replace(partial, self.snapshot_file)

    def hour(self, key: str) -> list[tuple[float, float | None]]:
        """The last hour's utilisation samples, (time, percent)."""
        return [(at, utilization) for at, utilization, _ in self.history.get(key, ())]

    def memory_hour(self, key: str) -> list[tuple[float, float | None]]:
        """The last hour's memory in use, (time, percent of the GPU's or the MIG device's own)."""
        return [(at, memory) for at, _, memory in self.history.get(key, ())]


def memory_percent(sample: dict) -> float | None:
    used, total = sample.get("memory_used"), sample.get("memory_total")
    return None if used is None or not total else 100.0 * used / total


def read_snapshot(path: str | Path) -> dict | None:
    """The GPU service's last snapshot; None where there is none, or where it is older than four rounds: the
    service is not sampling, and its figures say nothing of now."""
    try:
        snapshot = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if time.time() - snapshot.get("at", 0) > 4 * snapshot.get("interval", 5) + 10:
        return None
    return snapshot


def key_for(snapshot: dict, gpu: str, node: str = "") -> str | None:
    """The snapshot's key for a GPU as a server's record names it (UUID or index), on ``node`` for a cluster."""
    for key, figure in snapshot.get("gpus", {}).items():
        if node and figure.get("node") != node:
            continue
        if gpu in (figure.get("uuid"), figure.get("index")):
            return key
    return None


# A MIG device's memory in use, of its own, above which something is loaded there (an idle slice shows the driver's
# few MiB): NVIDIA's driver measures no utilisation per MIG device, and this is what can be measured.
SLICE_IN_USE = 0.01


def is_busy(sample: dict, busy_at: float) -> bool:
    """Whether a sample shows work: utilisation at the busy mark or above; for a MIG device, which has no
    utilisation figure, memory in use above SLICE_IN_USE of its own."""
    utilization = sample.get("utilization")
    if utilization is not None:
        return utilization >= busy_at
    if sample.get("profile") and sample.get("memory_total") and sample.get("memory_used") is not None:
        return sample["memory_used"] > SLICE_IN_USE * sample["memory_total"]
    return False


def idle_since(snapshot: dict, gpus: list[str], node: str, started: float) -> float | None:
    """Since when all of a server's ``gpus`` have been below the busy mark: their last busy sample, or when the
    server (or the sampling) started where none was busy since. None where a GPU has no figures (no sampler answers
    for it): nothing can be said of its idleness."""
    latest_busy = 0.0
    for gpu in gpus:
        key = key_for(snapshot, gpu, node)
        if key is None:
            return None
        figure = snapshot["gpus"][key]
        latest_busy = max(latest_busy, figure.get("last_busy") or 0.0, figure.get("first_seen") or 0.0)
    return max(latest_busy, started)


def quiet_for(snapshot: dict, gpus: list[str], node: str, started: float, now: float | None = None) -> float | None:
    """Seconds for which all of a server's ``gpus`` have been below the busy mark (see ``idle_since``)."""
    since = idle_since(snapshot, gpus, node, started)
    if since is None:
        return None
    return max(0.0, (time.time() if now is None else now) - since)
