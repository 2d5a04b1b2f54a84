"""The test bed's own Docker engine: Debian's docker.io, started without systemd when it is not running."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker

LOG = Path("/var/log/jupyterhub-gpu-testbed-dockerd.log")


def client() -> docker.DockerClient:
    """A client of a running engine, starting dockerd first if nothing answers."""
    engine = docker.from_env(timeout=600)
    try:
        engine.ping()
        return engine
    except docker.errors.DockerException:
        pass
    if not shutil.which("dockerd"):
        raise RuntimeError("no dockerd on this machine: run bin/test, which installs Debian's docker.io")
    with LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            engine.ping()
            return engine
        except docker.errors.DockerException:
            time.sleep(0.5)
    raise RuntimeError(f"dockerd did not answer within 60s; see {LOG}")
