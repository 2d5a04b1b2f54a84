"""Throwaway target hosts: docker-in-docker containers with sshd, reached by pyinfra over SSH."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker

from testbed import RUN, STATE, machine_lock
from testbed.images import SUDO_PASSWORD, ensure_target_image

LABEL = "jupyterhub-gpu-testbed"


@dataclass(frozen=True)
class HostKind:
    """What a target is: its Debian release, what boots it, and whom the deploy logs in as."""

    # "bookworm" (Debian 12, Docker 20.10) or "trixie" (Debian 13, Docker 26); trixie boots systemd only.
    suite: str = "bookworm"
    # "sysv": runlevel 2's start scripts, as Debian without systemd boots; "systemd": systemd as PID 1.
    init: str = "sysv"
    # "root"; "ops": sudo without a password; "opspw": sudo asks for a password (pyinfra's _sudo_password);
    # "nosudo": no sudo rights (systemd targets only).
    ssh_user: str = "root"

    def inventory_data(self) -> dict:
        """How pyinfra reaches such a host: as root, or as a user who becomes root with sudo."""
        if self.ssh_user == "root":
            return {}
        data = {"ssh_user": self.ssh_user, "_sudo": True}
        if self.ssh_user == "opspw":
            data["_sudo_password"] = SUDO_PASSWORD
        return data

    def __str__(self) -> str:
        return f"Debian {'13' if self.suite == 'trixie' else '12'} ({self.init}, as {self.ssh_user})"


SYSV = HostKind()
# Where most people are: a current Debian with systemd and Docker 26, reached as a user with sudo.
SYSTEMD_SUDO = HostKind("trixie", "systemd", "ops")


@dataclass
class TargetHost:
    name: str
    address: str
    container_id: str
    data: dict = field(default_factory=dict)
    # Inventory groups beside "targets": a cluster's "hub" or "gpu_nodes".
    groups: list[str] = field(default_factory=list)
    kind: HostKind = SYSV

    def inventory_entry(self, ssh_key: Path) -> dict:
        return {"name": self.address, "ssh_key": str(ssh_key), "data": self.data, "groups": self.groups}


def ssh_key() -> Path:
    """The test bed's SSH key, made once."""
    key = STATE / "ssh" / "id_ed25519"
    with machine_lock("ssh-key"):  # one key for every worker of a run
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", LABEL, "-f", str(key)], check=True)
    return key


def start_targets(engine: docker.DockerClient, count: int, prefix: str = "target", gpus: bool | list = False,
                  wsl_host: bool = False, kinds: list[HostKind] | None = None) -> list[TargetHost]:
    """Start ``count`` fresh hosts that can run their own Docker engine (see testbed/README.md); with ``gpus``, hosts
    whose driver reports two stand-in GPUs (or the list given, see ensure_target_image); with ``wsl_host``, WSL2
    stand-ins (with GPUs); ``kinds``, one per host, says what each is (default: Debian 12 booted by SysV init, reached
    as root)."""
    kinds = kinds or [SYSV] * count
    if len(kinds) != count:
        raise ValueError(f"{count} targets asked for, {len(kinds)} kinds given")
    public_key = ssh_key().with_suffix(".pub")
    run = uuid.uuid4().hex[:6]
    hosts = []
    for index, kind in enumerate(kinds):
        systemd = kind.init == "systemd"
        image = ensure_target_image(engine, gpus=gpus, wsl_host=wsl_host, systemd_suite=kind.suite if systemd else None)
        # /run is a tmpfs, emptied at each start as on any host that boots (pid files, sockets and locks go).
        boot = ["--tmpfs", "/run:rw,exec,size=256m"]
        if systemd:
            boot += ["--tmpfs", "/run/lock", "--volume", f"{public_key}:/etc/ssh/testbed_authorized_keys:ro"]
        name = f"{LABEL}-{prefix}{index}-{run}"
        # The docker CLI, not docker-py: `systempaths=unconfined` is a CLI-side option.
        container_id = subprocess.run(
            ["docker", "run", "--detach", "--name", name, "--hostname", f"{prefix}{index}",
             "--label", f"{LABEL}={run}", "--label", f"{LABEL}.run={RUN}",
             "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
             "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
             "--volume", f"{public_key}:/root/.ssh/authorized_keys:ro",
             # An anonymous volume: the inner engine needs a real filesystem for overlay2.
             "--volume", "/var/lib/docker",
             *boot, image],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        container = engine.containers.get(container_id)
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        hosts.append(TargetHost(name=name, address=address, container_id=container.id, data=kind.inventory_data(),
                                kind=kind))
    for target in hosts:
        wait_for_port(target.address, 22)
    return hosts


def wait_for_port(address: str, port: int, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    """Until ``address:port`` accepts connections; a server ``process`` of the test bed must not exit meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the test bed's server for {address}:{port} exited with {process.returncode}")
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{address}:{port} did not open within {timeout}s")


def write_inventory_file(targets: list[TargetHost], path: Path) -> Path:
    """The file inventories/ci.py reads (named by JUPYTERHUB_GPU_TARGETS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ssh_key()
    path.write_text(json.dumps([target.inventory_entry(key) for target in targets], indent=2))
    return path


def remove_targets(engine: docker.DockerClient, targets: list[TargetHost]) -> None:
    for target in targets:
        try:
            engine.containers.get(target.container_id).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def remove_all(engine: docker.DockerClient) -> int:
    """Remove every test bed target left behind by an interrupted run (not this run's: its workers share it)."""
    leftovers = [container for container in engine.containers.list(all=True, filters={"label": LABEL})
                 if container.labels.get(f"{LABEL}.run") != RUN]
    for container in leftovers:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass  # this run's other worker removed it first
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: its removal is already in progress, by the other worker
                raise
    return len(leftovers)




def bridge_gateway(engine: docker.DockerClient) -> str:
    """The address of this machine on Docker's default bridge, which every target reaches."""
    return network_gateway(engine.networks.get("bridge"))


def network_gateway(network) -> str:
    """A bridge network's gateway: this machine's address on it.

    A freshly started dockerd 20.10 leaves the default bridge's IPAM config without a Gateway (it
    fills it in only after a restart), so the bridge interface's own address is read instead.
    """
    network.reload()
    config = network.attrs["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return config["Gateway"]
    interface = network.attrs["Options"].get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"
    output = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", interface], check=True,
                            capture_output=True, text=True).stdout
    return output.split()[3].split("/")[0]
