"""The test bed's own Docker engine: Debian's docker.io, started without systemd, with the stand-in
NVIDIA hook on its PATH so that GPU device requests run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import requests
from docker.types import DeviceRequest

from testbed import STATE, machine_lock
from testbed.images import ensure_base
from testbed.nvidia import HOOK_NAME, stub_dir

LOG = Path("/var/log/jupyterhub-gpu-testbed-dockerd.log")
PID_FILE = Path("/var/run/docker.pid")


def client() -> docker.DockerClient:
    """A client of an engine that runs GPU device requests; (re)starts dockerd as needed.

    The test bed owns this machine's engine: a dockerd started without the stand-in hook is
    restarted with it.
    """
    # A fixed API version: negotiating one needs an engine that already answers. 1.41 is Debian 12's.
    engine = docker.from_env(version="1.41", timeout=600)
    with machine_lock("engine"):
        if not _answers(engine):
            _start_dockerd(engine)
        if not _runs_gpu_requests(engine, ensure_base(engine)):
            _stop_dockerd(engine)
            _start_dockerd(engine)
    return engine


def _answers(engine: docker.DockerClient) -> bool:
    try:
        return engine.ping()
    except (docker.errors.DockerException, requests.ConnectionError):
        return False


def _runs_gpu_requests(engine: docker.DockerClient, image: str) -> bool:
    request = DeviceRequest(device_ids=["0"], capabilities=[["gpu"]])
    try:
        engine.containers.run(image, ["true"], device_requests=[request], remove=True)
        return True
    except docker.errors.APIError as error:
        # Not registered (started without the hook), or registered from a checkout whose .testbed/ is gone.
        if "could not select device driver" in str(error) or f'"{HOOK_NAME}": executable file not found' in str(error):
            return False
        raise


def _start_dockerd(engine: docker.DockerClient) -> None:
    if not shutil.which("dockerd"):
        raise RuntimeError("no dockerd on this machine: run bin/test, which installs Debian's docker.io")
    env = {**os.environ, "PATH": f"{stub_dir(STATE)}:{os.environ.get('PATH', '')}"}
    with LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True, env=env)
    deadline = time.monotonic() + 60
    while not _answers(engine):
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer within 60s; see {LOG}")
        time.sleep(0.5)


def _stop_dockerd(engine: docker.DockerClient) -> None:
    pid = int(PID_FILE.read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _answers(engine) or PID_FILE.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd (pid {pid}) did not stop within 60s")
        time.sleep(0.5)
