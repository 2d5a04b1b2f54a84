"""What a cluster costs against one GPU host, printed in one run.

    .venv/bin/python -m benchmarks.swarm            (needs the test bed: run bin/test once first)

1. A cluster (a hub host and two GPU nodes with two stand-in GPUs each) and a single GPU host (two stand-in
   GPUs) are deployed cold, the same settings on each, over SSH.
2. No-change re-deploys of the three-host cluster: wall time of each, and the changes (none).
3. Spawn-to-ready through the hub's REST API, GPUSwarmSpawner on the cluster beside GPUDockerSpawner on the
   single host: rounds of two GPU servers started at once (what the single host holds), stopped after each
   round, the two hubs' rounds taking turns so that both see the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from testbed import STATE
from testbed import engine as testbed_engine
from testbed.aptrepo import Repository
from testbed.smoke import Deployment
from testbed.targets import TargetHost, bridge_gateway, remove_targets, start_targets, write_inventory_file

PROFILES = [{"name": "Standard"}]


def deployment(engine, targets: list[TargetHost], repository: Repository, name: str) -> Deployment:
    for target in targets:
        target.data.update({**repository.inventory_data(), "image_profiles": PROFILES})
    return Deployment(engine, targets, write_inventory_file(targets, STATE / f"bench-{name}.json"), [])


def deployed(cluster: Deployment, label: str) -> float:
    run = cluster.deploy(parallel=None)
    if run.returncode != 0:
        raise SystemExit(f"{label}: the deploy failed:\n{run.log[-4000:]}")
    return run.seconds


def spawn_round(hub, users: list[str]) -> list[float]:
    def timed(user: str) -> float:
        started = time.monotonic()
        hub.start_server(user, timeout=300)
        return time.monotonic() - started

    with ThreadPoolExecutor(len(users)) as pool:
        seconds = list(pool.map(timed, users))
    for user in users:
        hub.stop_server(user)
    return seconds


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="spawn rounds per hub (default 8, two servers each)")
    parser.add_argument("--redeploys", type=int, default=3, help="no-change re-deploys of the cluster (default 3)")
    args = parser.parse_args(argv)

    engine = testbed_engine.client()
    repository = Repository(bridge_gateway(engine))
    (manager,) = start_targets(engine, 1, prefix="benchhub")
    nodes = start_targets(engine, 2, prefix="benchnode", gpus=True)
    (single,) = start_targets(engine, 1, prefix="benchsingle", gpus=True)
    manager.groups = ["hub"]
    for node in nodes:
        node.groups = ["gpu_nodes"]
    cluster = deployment(engine, [manager, *nodes], repository, "cluster")
    alone = deployment(engine, [single], repository, "single")
    try:
        print(f"machine: {platform.node()}, {platform.system()} {platform.release()}, "
              f"{os.cpu_count()} CPUs")
        print(f"cold deploy: cluster of 3 hosts {deployed(cluster, 'cluster'):.0f} s, "
              f"single GPU host {deployed(alone, 'single'):.0f} s")
        seconds = []
        for _ in range(args.redeploys):
            seconds.append(deployed(cluster, "cluster again"))
            changes = cluster.runs[-1].totals.get("success")
            if changes:
                raise SystemExit(f"a no-change re-deploy changed {changes} operations: "
                                 f"{cluster.runs[-1].changed_operations()}")
        print(f"no-change re-deploy of the 3-host cluster: median {statistics.median(seconds):.1f} s "
              f"({', '.join(f'{s:.1f}' for s in seconds)}), 0 changes")

        hubs = {"GPUSwarmSpawner (cluster)": cluster.hub(manager), "GPUDockerSpawner (one host)": alone.hub(single)}
        latencies = {label: [] for label in hubs}
        for round_number in range(args.rounds):
            for label, hub in hubs.items():
                users = [f"bench{round_number}a", f"bench{round_number}b"]
                for user in users:
                    hub.ensure_user(user)
                latencies[label] += spawn_round(hub, users)
        print(f"spawn-to-ready, {args.rounds} rounds of 2 GPU servers at once:")
        for label, values in latencies.items():
            print(f"  {label:28} median {statistics.median(values):.2f} s, p95 {p95(values):.2f} s "
                  f"({len(values)} spawns)")
        swarm, single_host = latencies.values()
        print(f"  ratio cluster / one host: median {statistics.median(swarm) / statistics.median(single_host):.2f}, "
              f"p95 {p95(swarm) / p95(single_host):.2f}")
    finally:
        remove_targets(engine, cluster.targets + alone.targets)
        for used in (cluster, alone):
            used.targets_file.unlink(missing_ok=True)
        repository.close()


if __name__ == "__main__":
    main()
