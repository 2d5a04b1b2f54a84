"""How the deploy scales and where its time goes, and what the GPU spawner costs, printed in one run.

    .venv/bin/python -m benchmarks.deploy            (needs the test bed: run bin/test once first)

1. Cold deploy of one fresh target, by role: images built once on the controller and shipped, then on a
   second fresh target with ``image_build: target`` (each host builds its own).
2. Five fresh targets deployed cold at once, both ways.
3. No-change re-deploys to 1, 5 and 10 targets deployed the default way: wall time, and the commands each
   target ran (counted by the target's own sshd: one session per command or file transfer). pyinfra runs
   every host at once, as ``pyinfra <inventory> <deploy>`` does.
4. Spawn-to-ready median and p95 for 1, 10 and 50 concurrent spawns through a real hub, GPUDockerSpawner
   (a pool of 50 stand-in GPUs) beside plain DockerSpawner, and their ratios, from the same run.

The targets are CPU-only docker-in-docker hosts of the test bed, each with its own Docker engine, reached
over SSH: the deploy's work is real (apt, the engine, image loads, Compose), the network is local.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.spawner import spawn_latencies
from testbed import STATE
from testbed import engine as testbed_engine
from testbed.deploy import DeployRun, run_deploy
from testbed.images import ensure_singleuser_image
from testbed.storm import Storm
from testbed.targets import TargetHost, remove_targets, start_targets, write_inventory_file

SHIPPED = "built on the controller and shipped"


def deploy(targets: list[TargetHost], label: str) -> DeployRun:
    path = write_inventory_file(targets, STATE / f"bench-{uuid.uuid4().hex[:8]}.json")
    try:
        run = run_deploy(path, parallel=None)  # as `pyinfra <inventory> <deploy>` runs: every host at once
    finally:
        path.unlink(missing_ok=True)
    if run.returncode != 0:
        raise SystemExit(f"{label}: the deploy failed:\n{run.log[-4000:]}")
    return run


def sessions(engine, target: TargetHost) -> int:
    """SSH sessions the target's sshd has started so far (its log, LogLevel VERBOSE)."""
    log = engine.containers.get(target.container_id).logs(stdout=False, stderr=True).decode(errors="replace")
    return log.count("Starting session:")


def by_role(run: DeployRun) -> str:
    spans = sorted(run.seconds_by_role().items(), key=lambda item: -item[1])
    return ", ".join(f"{role} {seconds:.0f} s" for role, seconds in spans if seconds >= 0.5)


def cold(engine, ways: dict[str, dict], count: int) -> dict[str, list[TargetHost]]:
    kept = {}
    for way, data in ways.items():
        targets = start_targets(engine, count, prefix=f"bench{count}")
        for target in targets:
            target.data.update(data)
        run = deploy(targets, f"cold, {way}")
        print(f"cold deploy, {count} target{'s' if count > 1 else ''}, {way}: {run.seconds:.0f} s "
              f"({run.totals.get('success', 0)} changes)", flush=True)
        if count == 1:
            print(f"    by role: {by_role(run)}", flush=True)
        kept[way] = targets
    return kept


def no_change(engine, targets: list[TargetHost], counts: list[int]) -> None:
    deploy(targets, "warm-up")  # connections and caches as an operator's second run finds them
    for count in counts:
        chosen = targets[:count]
        before = [sessions(engine, target) for target in chosen]
        runs = [deploy(chosen, f"no-change, {count}") for _ in range(3)]
        after = [sessions(engine, target) for target in chosen]
        changed = sum(run.totals.get("success", 0) for run in runs)
        per_target = sorted({(a - b) // len(runs) for a, b in zip(after, before)})
        seconds = [run.seconds for run in runs]
        print(f"no-change re-deploy, {count:>2} target{'s' if count > 1 else ' '}: median "
              f"{statistics.median(seconds):.1f} s "
              f"(of 3: {', '.join(f'{s:.1f}' for s in seconds)}), commands per target {per_target}, "
              f"{changed} changes", flush=True)


def spawns(engine, levels: list[int]) -> None:
    image = ensure_singleuser_image(engine)
    results: dict[tuple[str, int], list[float]] = {}
    spawners = {"GPUDockerSpawner": ("gpudockerspawner.GPUDockerSpawner", {"gpu_ids": [str(i) for i in range(50)]}),
                "DockerSpawner": ("dockerspawner.DockerSpawner", {})}
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            # Enough spawns for a median and a p95 at each level, the two spawners interleaved so that the
            # machine's drift hits both alike.
            rounds = max(2, 20 // level)
            for round_ in range(rounds):
                for name, (cls, config) in spawners.items():
                    results.setdefault((name, level), []).extend(spawn_latencies(
                        engine, image, Path(tmp, f"{name}-{level}-{round_}"), cls, config, users=level))
    for level in levels:
        ours, plain = results[("GPUDockerSpawner", level)], results[("DockerSpawner", level)]
        q = Storm.quantile
        print(f"spawn-to-ready, {level:>2} concurrent ({len(ours)} spawns each): GPUDockerSpawner median "
              f"{statistics.median(ours):.2f} s, p95 {q(ours, 0.95):.2f} s; DockerSpawner median "
              f"{statistics.median(plain):.2f} s, p95 {q(plain, 0.95):.2f} s; ratio median "
              f"{statistics.median(ours) / statistics.median(plain):.3f}, p95 {q(ours, 0.95) / q(plain, 0.95):.3f}",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="1,5,10", help="no-change re-deploy sizes (default 1,5,10)")
    parser.add_argument("--cold", type=int, default=5, help="targets deployed cold at once (default 5)")
    parser.add_argument("--spawns", default="1,10,50", help="concurrent spawn levels (default 1,10,50)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: cold, no-change, spawns, "
                                                     "target-builds (the cold deploys with image_build: target)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    counts = [int(n) for n in args.targets.split(",")]
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}", flush=True)

    engine = testbed_engine.client()
    ways = {SHIPPED: {}, "built on each target": {"image_build": "target"}}
    if "target-builds" in skip:
        del ways["built on each target"]
    shipped: list[TargetHost] = []
    try:
        if "cold" not in skip:
            for targets in cold(engine, ways, 1).values():
                remove_targets(engine, targets)
            for way, targets in cold(engine, ways, args.cold).items():
                if way == SHIPPED:
                    shipped = targets
                else:
                    remove_targets(engine, targets)
        if "no-change" not in skip:
            # The default way only: each way has its own operations (a host that builds checks its build
            # contexts), and the count per target is compared across fleet sizes.
            missing = max(counts) - len(shipped)
            if missing > 0:
                extra = start_targets(engine, missing, prefix="benchextra")
                shipped += extra
                deploy(extra, "more targets")
            no_change(engine, shipped, counts)
    finally:
        remove_targets(engine, shipped)
    if "spawns" not in skip:
        spawns(engine, [int(n) for n in args.spawns.split(",")])


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"benchmark took {(time.monotonic() - started) / 60:.0f} min")
