"""A spawn storm: many users start their servers at the same moment, as a class logging in on a Monday
morning, while someone keeps asking the hub a cheap question. What it measures goes to the storm test and
to the benchmark; both only talk to the hub under test."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from testbed.hub import HubClient


@dataclass
class Storm:
    spawn_seconds: dict[str, float] = field(default_factory=dict)  # user → request to ready
    failed: dict[str, str] = field(default_factory=dict)  # user → why
    api_seconds: list[float] = field(default_factory=list)  # GET /users/<name> while the storm lasted

    @staticmethod
    def quantile(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100,
                                    method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]

    def summary(self) -> str:
        spawns = sorted(self.spawn_seconds.values())
        api = self.api_seconds
        parts = [f"{len(spawns)} ready, {len(self.failed)} given up on"]
        if spawns:
            parts.append(f"spawn-to-ready median {statistics.median(spawns):.1f} s, p95 "
                         f"{self.quantile(spawns, 0.95):.1f} s")
        if api:
            parts.append(f"hub API p50 {self.quantile(api, 0.5) * 1000:.0f} ms, p95 "
                         f"{self.quantile(api, 0.95) * 1000:.0f} ms, "
                         f"max {max(api) * 1000:.0f} ms ({len(api)} calls)")
        return "; ".join(parts)


@contextmanager
def hub_api_watched(hub: HubClient, user: str, every: float = 0.25):
    """While the block runs, someone asks the hub a cheap question (``GET /hub/api/users/<user>``) every
    ``every`` seconds; yields the list that the answers' latencies go to."""
    seconds: list[float] = []
    calm = threading.Event()

    def ask_the_hub() -> None:
        while not calm.is_set():
            started = time.perf_counter()
            try:
                hub.api("GET", f"/users/{user}").raise_for_status()
                seconds.append(time.perf_counter() - started)
            except requests.RequestException:
                pass
            calm.wait(every)

    watcher = threading.Thread(target=ask_the_hub, daemon=True)
    watcher.start()
    try:
        yield seconds
    finally:
        calm.set()
        watcher.join()


def storm(hub: HubClient, users: list[str], options: dict | None = None, timeout: float = 900) -> Storm:
    """Start every user's server at once; wait until each is ready or failed (bounded by ``timeout``)."""
    result = Storm()
    for user in users:
        hub.ensure_user(user)

    def spawn(user: str) -> None:
        started = time.perf_counter()
        try:
            response = hub.api("POST", f"/users/{user}/server", json=options or {})
        except requests.RequestException as error:  # a hub too busy to answer is a failed spawn for that person
            result.failed[user] = f"no answer to the spawn request: {error}"
            return
        if response.status_code not in (201, 202):
            result.failed[user] = f"{response.status_code} {response.text[:200]}"
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = hub.user(user) or {}
            except requests.RequestException:
                time.sleep(1)
                continue
            server = info.get("servers", {}).get("")
            if server and server.get("ready"):
                result.spawn_seconds[user] = time.perf_counter() - started
                return
            if not server and not info.get("pending"):
                result.failed[user] = "the hub stopped trying"
                return
            time.sleep(1)
        result.failed[user] = f"not ready within {timeout} s"

    with hub_api_watched(hub, users[0]) as api_seconds:
        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(spawn, users))
    result.api_seconds = api_seconds
    return result


def stop_all(hub: HubClient, users: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda user: hub.stop_server(user, timeout=120), users))
