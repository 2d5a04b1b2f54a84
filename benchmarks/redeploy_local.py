"""A no-change re-deploy of this machine, as a person runs it: `bin/deploy-local`, timed, with the commands it runs.

    sudo .venv/bin/python -m benchmarks.redeploy_local [--rounds 5]

This deploys the hub onto this machine (as the README's first command does) and then runs `bin/deploy-local`
``--rounds`` more times: each must change nothing. Printed: the wall time of each run, their median, and the
commands one run starts on the machine (pyinfra's ``--debug`` log, one line per command, counted in an extra run
that is not timed: its logging costs time of its own).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time

from testbed import REPO

GRAND_TOTAL = re.compile(r"Grand total\s+\d+\s+(\S+)\s+(\S+)\s+\d+")


def deploy_local(*options: str) -> tuple[float, str]:
    started = time.monotonic()
    run = subprocess.run([str(REPO / "bin" / "deploy-local"), *options], cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"bin/deploy-local failed:\n{(run.stdout + run.stderr)[-4000:]}")
    return seconds, run.stdout + run.stderr


def changes(log: str) -> str:
    """pyinfra's Grand total of changed and failed operations ("-" for none)."""
    match = GRAND_TOTAL.search(log)
    if not match:
        raise SystemExit(f"no Grand total in the deploy's output:\n{log[-2000:]}")
    return "/".join(match.groups())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    seconds, _ = deploy_local()
    print(f"first run (converging this machine): {seconds:.1f} s", flush=True)
    timed = []
    for round_ in range(args.rounds):
        seconds, log = deploy_local()
        if changes(log) != "-/-":
            raise SystemExit(f"run {round_ + 1} changed something (changed/failed {changes(log)}):\n{log[-3000:]}")
        timed.append(seconds)
        print(f"no-change run {round_ + 1}: {seconds:.2f} s", flush=True)
    _, debug = deploy_local("--debug")
    commands = debug.count("--> Running command on localhost:")
    print(f"no-change re-deploy of this machine: median {statistics.median(timed):.2f} s (min {min(timed):.2f}, "
          f"max {max(timed):.2f}, {len(timed)} runs); {commands} commands per run")


if __name__ == "__main__":
    main()
