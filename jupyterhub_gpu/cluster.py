"""The part a host plays in a cluster. An inventory with a `gpu_nodes` group is one: its `hub` host (exactly one)
runs the hub and manages a Docker Swarm, and each GPU node joins it as a worker that runs user servers. Without
a `gpu_nodes` group every host is a hub of its own, as before, and no swarm is made."""

from __future__ import annotations

from dataclasses import dataclass

from jupyterhub_gpu.settings import InventoryError

HUB_GROUP = "hub"
NODES_GROUP = "gpu_nodes"


@dataclass(frozen=True)
class Cluster:
    manager: str  # the hub host's inventory name
    nodes: tuple[str, ...]  # the GPU nodes' inventory names
    this_host: str

    @property
    def is_manager(self) -> bool:
        return self.this_host == self.manager

    @property
    def gpu_node(self) -> bool:
        return self.this_host in self.nodes


def cluster_of(inventory, host_name: str, active: set[str]) -> Cluster | None:
    """This host's part, or None where the inventory has no GPU nodes; ``active``: the hosts of this run."""
    nodes = tuple(host.name for host in inventory.get_group(NODES_GROUP, default=[]))
    if not nodes:
        return None
    hubs = [host.name for host in inventory.get_group(HUB_GROUP, default=[])]
    problem = None
    if len(hubs) != 1:
        problem = (f"an inventory with a {NODES_GROUP} group needs a {HUB_GROUP} group of exactly one host (the "
                   f"Swarm manager, which runs the hub); it has {', '.join(hubs) or 'none'}")
    elif host_name not in nodes and host_name not in hubs:
        problem = (f"host {host_name} is in neither the {HUB_GROUP} group nor the {NODES_GROUP} group; a cluster's "
                   "inventory puts every host in one of them")
    elif hubs[0] not in active:
        problem = (f"the hub host {hubs[0]} is not part of this run (--limit?): GPU nodes join its swarm and are "
                   "labelled through it, so every run that includes them includes it")
    if problem:
        raise InventoryError.for_host(host_name, problem)
    return Cluster(manager=hubs[0], nodes=nodes, this_host=host_name)
