"""GPUDockerSpawner benchmarks, each beside a baseline, printed in one run.

    .venv/bin/python -m benchmarks.spawner            (needs the test bed: run bin/test once first)

1. Allocation decisions per second, 64 GPUs and 1,000 users (16 per GPU), against the hand-made
   spawner's first-free-id scan that this project replaces.
2. Hub-start reconciliation: rebuilding the pool from 200 running labelled containers, as a
   hub does when it starts (one label-filtered Docker query, then the pool).
3. Spawn-to-ready latency of 20 concurrent spawns through a real hub, GPUDockerSpawner (20 GPUs
   in the pool) beside plain DockerSpawner on the same engine; median, p95 and their ratio.
4. The line for a GPU (``on_exhausted = "wait"``, one GPU): from the holder's stop to the next in line's
   server ready, beside a spawn that finds its GPU free.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from gpudockerspawner.pool import GPUPool, rebuild
from gpudockerspawner.spawner import GPUS_LABEL, OWNER_LABEL, POOL_LABEL
from testbed import engine as testbed_engine
from testbed.images import BASE, ensure_singleuser_image
from testbed.localhub import LocalHub
from testbed.wait import until


def allocation_rate() -> tuple[float, float]:
    ids = [str(i) for i in range(64)]
    users = [f"user{i}/" for i in range(1000)]

    def ours() -> int:
        pool = GPUPool(ids, users_per_gpu=16)
        for user in users:
            pool.allocate(user, 1)
        for user in users:
            pool.release(user)
        return 2 * len(users)

    def legacy() -> int:
        # The replaced spawner: a list of free ids, first free one taken, put back on stop.
        free = list(ids) * 16
        held = {}
        for user in users:
            held[user] = free.pop(0)
        for user in users:
            free.append(held.pop(user))
        return 2 * len(users)

    return _rate(ours), _rate(legacy)


def _rate(run, seconds: float = 2.0) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += run()
    return done / (time.perf_counter() - started)


def reconciliation(engine: docker.DockerClient, count: int = 200) -> tuple[float, float]:
    """Seconds for the label query and for the pool rebuild."""
    label = f"bench{int(time.time())}"
    ids = [str(i) for i in range(count)]

    def start(i: int):
        labels = {POOL_LABEL: label, OWNER_LABEL: f"user{i}/", GPUS_LABEL: str(i)}
        return engine.containers.run(BASE, ["sleep", "infinity"], detach=True, labels=labels,
                                     name=f"jupyterhub-gpu-bench-{label}-{i}")

    with ThreadPoolExecutor(8) as pool:
        containers = list(pool.map(start, range(count)))
    try:
        started = time.perf_counter()
        found = engine.api.containers(filters={"label": [f"{POOL_LABEL}={label}", OWNER_LABEL]})
        queried = time.perf_counter()
        running = {c["Labels"][OWNER_LABEL]: c["Labels"][GPUS_LABEL].split(",") for c in found}
        pool, problems = rebuild(ids, 1, running)
        rebuilt = time.perf_counter()
        assert len(pool.owners()) == count and not problems
        return queried - started, rebuilt - queried
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: c.remove(force=True), containers))


def spawn_latencies(engine, image, workdir: Path, spawner_class: str, spawner: dict, users: int = 20) -> list[float]:
    hub = LocalHub(workdir, engine, image, spawner, spawner_class=spawner_class)
    hub.start()
    try:
        names = [f"bench{i}" for i in range(users)]
        for name in names:
            hub.api.ensure_user(name)

        def spawn(name: str) -> float:
            started = time.perf_counter()
            hub.api.start_server(name, timeout=300)
            return time.perf_counter() - started

        with ThreadPoolExecutor(users) as pool:
            return list(pool.map(spawn, names))
    finally:
        hub.cleanup()


def handover_latencies(engine, image, workdir: Path, rounds: int = 6) -> tuple[list[float], list[float]]:
    """(stop of the holder to the next in line ready, spawn with the GPU free to ready), ``rounds`` of each."""
    hub = LocalHub(workdir, engine, image, {"gpu_ids": ["0"], "on_exhausted": "wait"})
    hub.start()
    handovers, fresh = [], []
    try:
        names = [f"line{i}" for i in range(rounds + 1)]
        for name in names:
            hub.api.ensure_user(name)
        with ThreadPoolExecutor(1) as requests:
            for holder, waiting in zip(names, names[1:]):
                if not hub.api.servers(holder):
                    started = time.perf_counter()
                    hub.api.start_server(holder, timeout=120)
                    fresh.append(time.perf_counter() - started)
                # The next presses Start (the request answers after the hub's slow_spawn_timeout) and is in line.
                requests.submit(hub.api.api, "POST", f"/users/{waiting}/server", json={})
                until(lambda: f"{waiting}/: waiting for a GPU" in hub.log(), 30, f"{waiting} in line", 0.05)
                released = time.perf_counter()
                hub.api.api("DELETE", f"/users/{holder}/server")
                until(lambda: (hub.api.servers(waiting).get("") or {}).get("ready"), 120, f"{waiting} ready", 0.05)
                handovers.append(time.perf_counter() - released)
                hub.api.stop_server(waiting)
    finally:
        hub.cleanup()
    return handovers, fresh


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    ours, legacy = allocation_rate()
    print(f"allocation, 64 GPUs x 1,000 users: {ours:,.0f} decisions/s (first-free-id baseline {legacy:,.0f}/s)")

    engine = testbed_engine.client()
    query, rebuilt = reconciliation(engine)
    print(f"hub-start reconciliation, 200 running labelled containers: {(query + rebuilt) * 1000:.1f} ms "
          f"(Docker query {query * 1000:.1f} ms, pool rebuild {rebuilt * 1000:.1f} ms)")

    image = ensure_singleuser_image(engine)
    results = {"GPUDockerSpawner": [], "DockerSpawner": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(2):  # interleaved, so that drift of the machine hits both alike
            results["GPUDockerSpawner"] += spawn_latencies(
                engine, image, Path(tmp, f"gpu{round_}"), "gpudockerspawner.GPUDockerSpawner",
                {"gpu_ids": [str(i) for i in range(20)]})
            results["DockerSpawner"] += spawn_latencies(
                engine, image, Path(tmp, f"plain{round_}"), "dockerspawner.DockerSpawner", {})
    for name, values in results.items():
        print(f"spawn-to-ready, 20 concurrent, {name}: median {statistics.median(values):.2f} s, "
              f"p95 {_p95(values):.2f} s ({len(values)} spawns)")
    ratio = statistics.median(results["GPUDockerSpawner"]) / statistics.median(results["DockerSpawner"])
    ratio95 = _p95(results["GPUDockerSpawner"]) / _p95(results["DockerSpawner"])
    print(f"ratio GPUDockerSpawner / DockerSpawner: median {ratio:.3f}, p95 {ratio95:.3f} (target <= 1.05)")

    with tempfile.TemporaryDirectory() as tmp:
        handovers, fresh = handover_latencies(engine, image, Path(tmp, "line"))
    print(f"the line for a GPU, from the holder's stop to the next in line's server ready: median "
          f"{statistics.median(handovers):.2f} s, max {max(handovers):.2f} s ({len(handovers)} handovers); a spawn "
          f"that finds its GPU free: median {statistics.median(fresh):.2f} s ({len(fresh)})")


if __name__ == "__main__":
    main()
