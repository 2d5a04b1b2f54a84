"""Run the real deploy with pyinfra's CLI and read pyinfra's own per-operation results (--json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import REPO

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


@dataclass
class DeployRun:
    returncode: int
    seconds: float
    results: dict | None
    log: str

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


def run_deploy(targets_file: Path, deploy: str = "deploy/jupyterhub.py", inventory: str = "inventories/ci.py",
               env: dict | None = None, timeout: int = 1800) -> DeployRun:
    started = time.monotonic()
    process = subprocess.run(
        [PYINFRA, "-y", "--json", "--parallel", "8", inventory, deploy],
        cwd=REPO,
        env={**os.environ, "JUPYTERHUB_GPU_TARGETS": str(targets_file), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    try:
        payload = json.loads(process.stdout)
    except json.JSONDecodeError:
        payload = {}
    return DeployRun(process.returncode, seconds, payload.get("results"), process.stderr + process.stdout)
