"""A class logging in at once, on a deployed hub, with this project's spawn settings beside JupyterHub's
defaults, printed in one run.

    .venv/bin/python -m benchmarks.spawn_storm [--users 30] [--rounds 1]   (needs the test bed: bin/test once)

One throwaway CPU-only target (as many cores as this machine gives it) is deployed. Each round starts
``--users`` servers at the same moment twice: once with the defaults (a line of twice the host's CPUs,
start/http timeouts of 900/300 s, user containers weighing 256 against the hub's 1024) and once with
JupyterHub's own (no line, 60/30 s, equal weights), redeploying between the two. Printed per set-up:
servers ready and given up on, spawn-to-ready median and p95, and the hub API's p50/p95/max latency
(``GET /hub/api/users/<name>``, four times a second) while the storm lasted.
"""

from __future__ import annotations

import argparse

from testbed.smoke import deploy_twice, start
from testbed.storm import Storm, stop_all, storm
from testbed.targets import remove_targets

SETUPS = {
    "jupyterhub-gpu defaults": {"spawns_at_once": None, "spawn_start_timeout": 900, "spawn_http_timeout": 300,
                                "user_cpu_shares": 256},
    "JupyterHub's defaults (baseline)": {"spawns_at_once": 0, "spawn_start_timeout": 60, "spawn_http_timeout": 30,
                                         "user_cpu_shares": 1024},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)

    deployment = start(1, prefix="storm")
    (target,) = deployment.targets
    try:
        deploy_twice(deployment)
        results: dict[str, list[Storm]] = {name: [] for name in SETUPS}
        users = [f"storm{i:03d}" for i in range(args.users)]
        for round_ in range(args.rounds):
            for name, settings in SETUPS.items():
                for key in [key for key, value in settings.items() if value is None]:
                    target.data.pop(key, None)  # back to the deploy's own default
                run = deployment.redeploy_with(**{k: v for k, v in settings.items() if v is not None})
                assert run.returncode == 0, run.log[-3000:]
                hub = deployment.hub(target)
                result = storm(hub, users, options={"gpu": "cpu"})
                print(f"round {round_ + 1}, {name}: {result.summary()}", flush=True)
                results[name].append(result)
                stop_all(hub, [user for user in users if user in result.spawn_seconds])
        print(f"\n{args.users} servers started at once, {args.rounds} round(s), on {target.name}:")
        for name, runs in results.items():
            merged = Storm()
            for result in runs:
                merged.spawn_seconds.update({f"{id(result)}{k}": v for k, v in result.spawn_seconds.items()})
                merged.failed.update({f"{id(result)}{k}": v for k, v in result.failed.items()})
                merged.api_seconds += result.api_seconds
            print(f"  {name}: {merged.summary()}")
    finally:
        remove_targets(deployment.engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
