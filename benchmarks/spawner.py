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
5. Kinds and MIG slices: allocation decisions per second in a pool of 56 MIG slices and 8 whole GPUs, each user
   asking for a kind (or any), beside the same 64 units of one kind; and spawn-to-ready through a real hub of 8
   servers given a MIG slice beside 8 given a whole GPU (all 8 whole GPUs), started together on one hub.
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


# Eight A100s in MIG mode, seven 1g.10gb slices each, beside eight whole RTX 4090s (the stand-in's UUIDs: nothing
# here reads them from a driver).
SLICE, WHOLE = "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "NVIDIA GeForce RTX 4090"
UNITS = {**{f"MIG-{gpu:08x}-0000-4000-8000-{mig:012x}": SLICE for gpu in range(8) for mig in range(7)},
         **{f"GPU-{gpu:08x}-1111-4111-8111-000000000000": WHOLE for gpu in range(8)}}


def allocation_rate_by_kind() -> tuple[float, float]:
    """Decisions per second where each user asks for a kind (slice, whole, any in turn), and where all 64 units are
    of one kind; 1,000 users, 16 per unit."""
    users = [f"user{i}/" for i in range(1000)]
    asks = [[SLICE], [WHOLE], []]

    def run(kinds: dict[str, str], by_kind: bool) -> int:
        pool = GPUPool(list(kinds), users_per_gpu=16, kinds=kinds)
        for i, user in enumerate(users):
            pool.allocate(user, 1, asks[i % 3] if by_kind else ())
        for user in users:
            pool.release(user)
        return 2 * len(users)

    return _rate(lambda: run(UNITS, True)), _rate(lambda: run(dict.fromkeys(UNITS, "GPU"), False))


def slice_and_whole_latencies(engine, image, workdir: Path, each: int = 8) -> dict[str, list[float]]:
    """Spawn-to-ready of ``each`` servers asking for a slice and ``each`` asking for a whole GPU, all at once."""
    units = {uuid: {"kind": kind, "label": kind, "share": round(1 / 7, 4) if kind == SLICE else 1.0}
             for uuid, kind in UNITS.items()}
    hub = LocalHub(workdir, engine, image, {"gpu_ids": list(UNITS), "gpu_units": units})
    hub.start()
    try:
        asks = {f"slice{i}": SLICE for i in range(each)} | {f"whole{i}": WHOLE for i in range(each)}
        for name in asks:
            hub.api.ensure_user(name)

        def spawn(name: str) -> tuple[str, float]:
            started = time.perf_counter()
            hub.api.start_server(name, timeout=300, options={"gpu_kind": asks[name]})
            return asks[name], time.perf_counter() - started

        latencies = {SLICE: [], WHOLE: []}
        with ThreadPoolExecutor(len(asks)) as pool:
            for kind, seconds in pool.map(spawn, asks):
                latencies[kind].append(seconds)
        held = {server["user"]: server["gpus"][0] for server in hub.api.gpu_table()["servers"]}
        assert all(UNITS[held[name]] == kind for name, kind in asks.items()), held
        return latencies
    finally:
        hub.cleanup()


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

    by_kind, one_kind = allocation_rate_by_kind()
    print(f"allocation with kinds, 56 MIG slices + 8 whole GPUs x 1,000 users asking for a kind: {by_kind:,.0f} "
          f"decisions/s (the same 64 units of one kind: {one_kind:,.0f}/s)")
    with tempfile.TemporaryDirectory() as tmp:
        latencies = slice_and_whole_latencies(engine, image, Path(tmp, "kinds"))
    for kind, values in latencies.items():
        print(f"spawn-to-ready, 8 concurrent beside 8 of the other kind, {kind}: median "
              f"{statistics.median(values):.2f} s, max {max(values):.2f} s")


if __name__ == "__main__":
    main()
