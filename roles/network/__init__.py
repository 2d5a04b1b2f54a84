"""Ensure the network that the hub and the user containers share, and the firewall that keeps user containers
apart from each other and from the host on it."""

from __future__ import annotations

import io
from pathlib import Path

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.server import Command
from pyinfra.operations import docker, files, systemd

from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render

TEMPLATES = Path(__file__).parent / "templates"
FIREWALL = "/usr/local/sbin/jupyterhub-gpu-firewall"
# The bridge the firewall last applied to, which it reads at boot, before the engine answers.
FIREWALL_BRIDGE = "/var/lib/jupyterhub-gpu/firewall-bridge"
# The hub's network identity, which the firewall trusts: its container's MAC address (locally administered),
# and its API port, below 1024 so that no user container can listen on it.
HUB_MAC = "02:6a:75:70:68:01"
PROXY_MAC = "02:6a:75:70:68:02"
HUB_API_PORT = 81


@operation(is_idempotent=True)
def firewall_applied(script: str = FIREWALL):
    """The firewall's rules in force, applied where they are not (after a reboot, or when they changed)."""
    if host.get_fact(Command, command=f"{script} --check >/dev/null 2>&1 && echo applied || echo stale") == "applied":
        host.noop("the firewall keeps user containers apart from each other and from the host")
        return
    yield StringCommand(script)


@deploy("Docker network")
def ensure_network(target: Target) -> None:
    settings = target.settings
    if target.cluster:
        # Spans the swarm's nodes; attachable, so that the hub and the proxy (Compose containers) join it.
        docker.network(name=f"Overlay network {settings.network_name} across the swarm", network=settings.network_name,
                       driver="overlay", attachable=True)
        host.log("an overlay network carries user servers' traffic between nodes: this host's firewall, which keeps "
                 "user containers apart on a bridge, does not apply to it")
        return
    docker.network(name=f"Bridge network {settings.network_name}", network=settings.network_name, driver="bridge")
    if target.profile.docker_desktop:
        host.log("Docker Desktop's engine runs in its own VM: this host's firewall cannot keep its containers apart")
        return
    files.put(name="Firewall script", dest=FIREWALL, mode="755", src=io.StringIO(render(
        TEMPLATES, "jupyterhub-gpu-firewall.sh.j2", network=settings.network_name, hub_mac=HUB_MAC,
        proxy_mac=PROXY_MAC, api_port=HUB_API_PORT, bridge_file=FIREWALL_BRIDGE)))
    if target.profile.systemd:
        unit = files.put(name="Firewall unit (with the Docker engine)", dest="/etc/systemd/system/jupyterhub-gpu-firewall.service",
                         src=str(TEMPLATES / "jupyterhub-gpu-firewall.service"), mode="644")
        systemd.daemon_reload(name="Reload systemd for the firewall unit", _if=unit.did_change)
        systemd.service(name="Firewall unit enabled", service="jupyterhub-gpu-firewall.service", enabled=True)
    firewall_applied(name="Firewall in force")
