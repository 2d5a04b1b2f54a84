"""Ensure the network that the hub and the user containers share, and the firewall that keeps user containers
apart from each other and from the host on it: on one host a bridge, whose traffic this host's firewall sees;
in a cluster an overlay network across the swarm, encrypted, with a firewall on every node for what leaves its
containers by the node (each server's entry point fences in what stays on the overlay)."""

from __future__ import annotations

import io
from pathlib import Path

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, deploy, operation
from pyinfra.facts.docker import DockerNetwork
from pyinfra.facts.server import Command
from pyinfra.operations import docker, files, systemd

from jupyterhub_gpu.facts import TargetProfile
from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render

TEMPLATES = Path(__file__).parent / "templates"
FIREWALL = "/usr/local/sbin/jupyterhub-gpu-firewall"
# The bridge the firewall last applied to, which it reads at boot, before the engine answers.
FIREWALL_BRIDGE = "/var/lib/jupyterhub-gpu/firewall-bridge"
# The hub's network identity, which the firewall trusts: its container's MAC address (locally administered),
# and its API port, below 1024 so that no user container can listen on it.
HUB_MAC = "02:6a:75:70:68:01"
PROXY_CONTAINER = "jupyterhub-proxy"
PROXY_MAC = "02:6a:75:70:68:02"
HUB_API_PORT = 81
# The GPU service's port for user servers (api/me, their JupyterLab's GPU view), in the hub's container: below 1024
# as well, and the only other port the servers may reach.
GPU_VIEW_PORT = 82


@operation(is_idempotent=True)
def firewall_applied(script: str = FIREWALL):
    """The firewall's rules in force, applied where they are not (after a reboot, or when they changed)."""
    if host.get_fact(Command, command=f"{script} --check >/dev/null 2>&1 && echo applied || echo stale") == "applied":
        host.noop("the firewall keeps user containers apart from each other and from the host")
        return
    yield StringCommand(script)


@operation(is_idempotent=True)
def network_settled(network: str, encrypted: bool | None = None):
    """A check: a network of that name made earlier (by a deploy or by hand) is what the settings say, or the
    deploy stops here, before it changes anything that depends on it. The firewall is IPv4 only, so the
    network may not carry IPv6; an overlay's encryption is fixed when Docker makes it."""
    found = host.get_fact(DockerNetwork, object_id=network) or []
    if not found:
        host.noop(f"no network {network} yet")
        return
    inspected = found[0]
    if inspected.get("EnableIPv6"):
        raise OperationError(
            f"network {network} has IPv6 on, and the firewall that keeps user containers apart is IPv4 only: remove "
            f"the network (stop the hub and the servers on it first) and deploy again; it is made without IPv6")
    is_encrypted = "encrypted" in (inspected.get("Options") or {})
    if encrypted is not None and is_encrypted != encrypted:
        raise OperationError(
            f"the overlay network {network} is {'' if is_encrypted else 'not '}encrypted, and swarm_network_encrypted "
            f"is {encrypted}: Docker fixes that when it makes a network. Stop the hub (`docker compose down` in its "
            f"install_dir) and the user servers (`docker service rm` each jupyter-* service), remove the network "
            f"(`docker network rm {network}`) and deploy again; the users' files stay on their volumes")
    host.noop(f"network {network} is as the settings say"
              + ("" if encrypted is None else f" ({'encrypted' if is_encrypted else 'not encrypted'})"))
    yield from ()


def firewall_script(target: Target, mode: str, nodes: list[str]) -> str:
    """The firewall script for one host ("bridge") or a node of a cluster ("cluster", with its nodes' addresses)."""
    return render(TEMPLATES, "jupyterhub-gpu-firewall.sh.j2", mode=mode, network=target.settings.network_name,
                  hub_mac=HUB_MAC, proxy_mac=PROXY_MAC, api_ports=[HUB_API_PORT, GPU_VIEW_PORT],
                  bridge_file=FIREWALL_BRIDGE, nodes=nodes)


def _firewall(target: Target, mode: str, nodes: list[str]) -> None:
    files.put(name="Firewall script", dest=FIREWALL, mode="755", src=io.StringIO(firewall_script(target, mode, nodes)),
              create_remote_dir=False)
    if target.profile.systemd:
        unit = files.put(name="Firewall unit (with the Docker engine)",
                         dest="/etc/systemd/system/jupyterhub-gpu-firewall.service",
                         src=str(TEMPLATES / "jupyterhub-gpu-firewall.service"), mode="644", create_remote_dir=False)
        systemd.daemon_reload(name="Reload systemd for the firewall unit", _if=unit.did_change)
        systemd.service(name="Firewall unit enabled", service="jupyterhub-gpu-firewall.service", enabled=True)
    firewall_applied(name="Firewall in force")


def cluster_addresses(target: Target) -> list[str]:
    """Every IPv4 address of every host of the cluster (its advertised one included), in inventory order."""
    inventory = host.state.inventory
    addresses: list[str] = []
    for name in (target.cluster.manager, *target.cluster.nodes):
        member = inventory.get_host(name)
        advertised = member.data.get("swarm_advertise_address")
        addresses += ([advertised] if advertised else []) + list(member.get_fact(TargetProfile).ipv4)
    return list(dict.fromkeys(addresses))


@deploy("Cluster firewall")
def ensure_cluster_firewall(target: Target) -> None:
    """On every host of a cluster, before it joins the swarm: Swarm's ports for the cluster's nodes only, and
    nothing from the node's containers to the node, the other nodes or the metadata address."""
    if target.cluster is None:
        return
    if target.profile.docker_desktop:
        host.log("Docker Desktop's engine runs in its own VM: this host's firewall cannot keep its containers apart")
        return
    _firewall(target, "cluster", cluster_addresses(target))


@deploy("Docker network")
def ensure_network(target: Target) -> None:
    settings = target.settings
    if target.cluster:
        encrypted = settings.swarm_network_encrypted
        network_settled(name=f"Network {settings.network_name} as the settings say", network=settings.network_name,
                        encrypted=encrypted)
        # Spans the swarm's nodes; attachable, so that the hub and the proxy (Compose containers) join it.
        docker.network(name=f"Overlay network {settings.network_name} across the swarm"
                       + (", encrypted" if encrypted else ""), network=settings.network_name,
                       driver="overlay", attachable=True, opts=["encrypted"] if encrypted else None)
        return
    network_settled(name=f"Network {settings.network_name} as the settings say", network=settings.network_name)
    docker.network(name=f"Bridge network {settings.network_name}", network=settings.network_name, driver="bridge")
    if target.profile.docker_desktop:
        host.log("Docker Desktop's engine runs in its own VM: this host's firewall cannot keep its containers apart")
        return
    _firewall(target, "bridge", [])
