"""Run the real deploy with pyinfra's CLI and read pyinfra's own per-operation results (--json).

pyinfra's log is read as it is written, so that a caller can see each operation start (the benchmark
times the roles by it) and can interrupt the deploy there as a power cut or a closed laptop would: SIGKILL
to pyinfra and everything it started on the controller."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testbed import REPO

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTING = re.compile(r"^--> Starting (?:[a-z ,]+ )?operation: (.*)$")


@dataclass
class DeployRun:
    returncode: int
    seconds: float
    results: dict | None
    log: str
    # (seconds since the start, operation name), in the order pyinfra started them
    started: list[tuple[float, str]] = field(default_factory=list)
    killed_at: str | None = None

    @property
    def totals(self) -> dict:
        return self.results["totals"] if self.results else {}

    def changed_operations(self) -> list[str]:
        """Names of the operations that changed something, with the hosts they changed."""
        return [
            f"{op['name']} on {', '.join(op['success'])}"
            for op in (self.results or {}).get("operations", [])
            if op["success"]
        ]

    def seconds_by_role(self) -> dict[str, float]:
        """Wall time from each operation's start to the next one's, summed by role (the ``@deploy`` name
        that pyinfra puts before `` | ``); the time before the first operation is "connect and facts"."""
        spans: dict[str, float] = {}
        marks = [*self.started, (self.seconds, "")]
        if marks[0][0] > 0:
            spans["connect, facts and operation order"] = marks[0][0]
        for (at, name), (until, _) in zip(marks, marks[1:]):
            role = name.split(" | ", 1)[0] if " | " in name else "deploy"
            spans[role] = spans.get(role, 0.0) + until - at
        return spans


def run_deploy(targets_file: Path, deploy: str = "deploy/jupyterhub.py", inventory: str = "inventories/ci.py",
               env: dict | None = None, timeout: int = 1800,
               kill_when: Callable[[str], float | None] | None = None, parallel: int | None = 8) -> DeployRun:
    """Run the deploy to its end, or, where ``kill_when(operation name)`` returns a number of seconds, SIGKILL
    it that long after that operation started. ``parallel``: pyinfra's ``--parallel`` (None: its default, every
    host at once)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [PYINFRA, "-y", "--json", *(["--parallel", str(parallel)] if parallel else []), inventory, deploy],
        cwd=REPO,
        env={**os.environ, "JUPYTERHUB_GPU_TARGETS": str(targets_file), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True)
    reader.start()
    watchdog = threading.Timer(timeout, _kill_group, (process,))
    watchdog.start()
    run = DeployRun(-1, 0.0, None, "")
    log = []
    for line in process.stderr:
        log.append(line)
        match = STARTING.match(ANSI.sub("", line).strip())
        if not match:
            continue
        name = match.group(1)
        run.started.append((time.monotonic() - started, name))
        delay = kill_when(name) if kill_when and run.killed_at is None else None
        if delay is not None:
            run.killed_at = name
            threading.Timer(delay, _kill_group, (process,)).start()
    process.wait()
    watchdog.cancel()
    reader.join()
    run.returncode = process.returncode
    run.seconds = time.monotonic() - started
    run.log = "".join(log) + "".join(stdout)
    try:
        run.results = json.loads("".join(stdout)).get("results")
    except json.JSONDecodeError:
        pass
    return run


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def operation_order(targets_file: Path, deploy: str = "deploy/jupyterhub.py", inventory: str = "inventories/ci.py",
                    env: dict | None = None) -> list[str]:
    """The operations a deploy would run now, in order, as pyinfra plans them (``--debug-operations``):
    read-only, so it changes nothing on the hosts."""
    process = subprocess.run(
        [PYINFRA, "-y", "--json", "--debug-operations", inventory, deploy],
        cwd=REPO, env={**os.environ, "JUPYTERHUB_GPU_TARGETS": str(targets_file), **(env or {})},
        capture_output=True, text=True, timeout=300,
    )
    if process.returncode != 0:
        raise RuntimeError(f"planning the deploy failed:\n{process.stderr[-3000:]}")
    return [", ".join(op["names"]) for op in json.loads(process.stdout)["op_order"]]
