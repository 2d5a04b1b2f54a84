"""Ensure the Docker Swarm of a cluster: the hub host manages it, each GPU node is a worker labelled with what
it has (its GPUs it advertises itself, see the NVIDIA role), and a node gone from the inventory is drained and
removed only when a setting says so. The join token is read from the manager when a node joins and handed
straight to the node's engine: never printed, never on the controller's disk."""

from __future__ import annotations

import json

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, OperationError, QuoteString, StringCommand, deploy, operation

from gpudockerspawner.placement import (
    GPU_COUNT_LABEL,
    GPU_KINDS_LABEL,
    GPU_MODEL_LABEL,
    INVENTORY_LABEL,
    SERVERS_LABEL,
    resource_of,
)
from jupyterhub_gpu import remote
from jupyterhub_gpu.facts import DockerServerVersion
from jupyterhub_gpu.target import Target

SWARM_PORT = 2377


class SwarmState(FactBase):
    """This engine's part in a swarm (`docker info`'s Swarm section); {} where no engine answers."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "docker info --format '{{json .Swarm}}' 2>/dev/null || true"

    def process(self, output) -> dict:
        text = "".join(output).strip()
        return json.loads(text) if text.startswith("{") else {}


class SwarmNodes(FactBase):
    """The swarm's nodes as its manager sees them: [{"id", "hostname", "state", "availability", "labels"}]."""

    @staticmethod
    def default() -> list:
        return []

    def command(self) -> str:
        return ("docker node ls --quiet 2>/dev/null | xargs -r docker node inspect --format '[{{json .ID}}, "
                "{{json .Description.Hostname}}, {{json .Status.State}}, {{json .Spec.Availability}}, "
                "{{json .Spec.Labels}}]' 2>/dev/null || true")

    def process(self, output) -> list:
        nodes = []
        for line in output:
            if line.strip().startswith("["):
                node_id, hostname, node_state, availability, labels = json.loads(line)
                nodes.append({"id": node_id, "hostname": hostname, "state": node_state, "availability": availability,
                              "labels": labels or {}})
        return nodes


def _active(swarm: dict) -> bool:
    return swarm.get("LocalNodeState") == "active"


@operation(is_idempotent=True)
def swarm_managed(advertise_address: str):
    """This engine manages a swarm: `docker swarm init` where it is in none."""
    swarm = host.get_fact(SwarmState)
    if _active(swarm) and swarm.get("ControlAvailable"):
        host.noop(f"this host manages the swarm, advertised at {swarm.get('NodeAddr')}")
        return
    if _active(swarm):
        managers = ", ".join(m.get("Addr", "?") for m in swarm.get("RemoteManagers") or [])
        raise OperationError(f"this host is a worker of another swarm (managers: {managers}); make it leave "
                             "(`docker swarm leave`) or make it the hub of that cluster")
    yield StringCommand("docker", "swarm", "init", "--advertise-addr", QuoteString(advertise_address))


# Docker 23.0 took swarmkit's fix for its constraint enforcer, which before then shut down a task holding a GPU
# whenever that task's node changed (moby/moby#44378).
FIXED_ENGINE = 23


@operation(is_idempotent=True)
def engine_hands_out_gpus_safely():
    """A check: warns where the manager's engine predates Docker 23.0 (its GPU tasks are shut down whenever their
    node changes: a restart, a label, the node's first task on the network); changes nothing."""
    version = host.get_fact(DockerServerVersion) or ""
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else None
    if major is not None and major < FIXED_ENGINE and host.state.is_executing:
        host.log(f"Docker {version} manages this swarm: before 23.0, Swarm shuts down a server holding a GPU whenever "
                 "its node changes (moby/moby#44378); the hub starts such a server again, but a running one stops. "
                 "Use Docker 23 or newer on the hub host (engine_source: docker-ce)", log_func=logger.warning)
    host.noop(f"the swarm's manager runs Docker {version or '(not yet running)'}")
    yield from ()


def _join(state, host, manager_name: str) -> bool:
    manager = state.inventory.get_host(manager_name)
    quiet = {"print_output": False, "print_input": False}
    found, output = remote.run(state, manager, StringCommand("docker", "info", "--format", "'{{.Swarm.NodeAddr}}'"),
                               **quiet)
    address = output.stdout.strip() if found else ""
    got, token = remote.run(state, manager, StringCommand("docker", "swarm", "join-token", "--quiet", "worker"),
                            **quiet)
    if not (address and got):
        host.log(f"could not read the swarm's address and join token from the hub host {manager_name}",
                 log_func=logger.error)
        return False
    joined, output = remote.run(
        state, host, StringCommand("docker", "swarm", "join", "--token", QuoteString(token.stdout.strip()),
                      QuoteString(f"{address}:{SWARM_PORT}")), **quiet)
    if not joined:
        # Docker's own words, which never hold the token.
        host.log(f"could not join the swarm at {address}:{SWARM_PORT}: {output.stderr.strip()}", log_func=logger.error)
    return joined


@operation(is_idempotent=True)
def swarm_joined(manager_name: str):
    """This engine is a worker (or the manager) of the hub host's swarm: `docker swarm join` where it is in none,
    with a token read from the manager just then."""
    swarm = host.get_fact(SwarmState)
    if _active(swarm):
        managers = [m.get("Addr", "?") for m in swarm.get("RemoteManagers") or []]
        ours = host.state.inventory.get_host(manager_name).get_fact(SwarmState).get("NodeAddr")
        if ours not in {address.rsplit(":", 1)[0] for address in managers}:
            raise OperationError(f"this host is a node of another swarm (managers: {', '.join(managers)}), not of "
                                 f"the hub host {manager_name}'s; make it leave (`docker swarm leave`) and deploy "
                                 "again")
        host.noop(f"this host is a node of the swarm managed at {', '.join(managers)}")
        return
    yield FunctionCommand(_join, (manager_name,), {})


def _labelled(state, host, manager_name: str, labels: dict) -> bool:
    found, output = remote.run(state, host, StringCommand("docker", "info", "--format", "'{{.Swarm.NodeID}}'"))
    node_id = output.stdout.strip() if found else ""
    if not node_id:
        host.log("this host is not a node of the swarm: cannot label it", log_func=logger.error)
        return False
    manager = state.inventory.get_host(manager_name)
    changes = []
    for key, value in labels.items():
        changes += ["--label-add", QuoteString(f"{key}={value}")]
    done, output = remote.run(state, manager, StringCommand("docker", "node", "update", *changes, QuoteString(node_id)))
    if not done:
        host.log(f"could not label this node on {manager_name}: {output.stderr.strip()}", log_func=logger.error)
    return done


@operation(is_idempotent=True)
def node_labelled(manager_name: str, labels: dict):
    """The node's labels in the swarm (set through the manager, which alone may): what it has, and that it takes
    user servers."""
    node_id = host.get_fact(SwarmState).get("NodeID")
    if node_id:
        manager = host.state.inventory.get_host(manager_name)
        current = next((node["labels"] for node in manager.get_fact(SwarmNodes) if node["id"] == node_id), {})
        if all(current.get(key) == value for key, value in labels.items()):
            host.noop("the node's labels say " + ", ".join(f"{key}={value}" for key, value in labels.items()))
            return
    yield FunctionCommand(_labelled, (manager_name, labels), {})


@operation(is_idempotent=True)
def absent_nodes_removed(inventory_names: list[str], remove: bool):
    """Nodes that the deploy labelled but that are no longer in the inventory: drained (their servers stop) and
    removed from the swarm where ``remove`` says so; otherwise named in a warning."""
    absent = [node for node in host.get_fact(SwarmNodes)
              if node["labels"].get(INVENTORY_LABEL) and node["labels"][INVENTORY_LABEL] not in inventory_names]
    if not absent:
        host.noop("every labelled node of the swarm is in the inventory's gpu_nodes group")
        return
    named = ", ".join(f"{node['hostname']} ({node['labels'][INVENTORY_LABEL]})" for node in absent)
    if not remove:
        host.log(f"swarm nodes not in the inventory: {named}; they keep running their servers. Set "
                 "swarm_remove_absent_nodes: true to drain them and remove them from the swarm",
                 log_func=logger.warning)
        host.noop(f"left as they are: {named}")
        return
    for node in absent:
        # Draining stops the node's tasks (their servers show as stopped at the hub's next poll) and places none.
        yield StringCommand("docker", "node", "update", "--availability", "drain", QuoteString(node["id"]))
        yield StringCommand("sh", "-c", QuoteString(
            f"for i in $(seq 60); do [ -z \"$(docker node ps --quiet --filter desired-state=running {node['id']})\" ]"
            " && break; sleep 1; done"))
        yield StringCommand("docker", "node", "rm", "--force", QuoteString(node["id"]))


class ServiceImage(FactBase):
    """The image a Swarm service runs, or None where there is no such service."""

    def command(self, service: str) -> StringCommand:
        return StringCommand("docker", "service", "inspect", QuoteString(service), "--format",
                             "'{{.Spec.TaskTemplate.ContainerSpec.Image}}'", "2>/dev/null", "||", "true")

    def process(self, output):
        return "".join(output).strip() or None


@operation(is_idempotent=True)
def network_held_on_nodes(service: str, image: str, network: str):
    """A global service, one small idle task on each node that takes user servers, so that every such node keeps
    its place on ``network``. Without one, a node's first server there changes the node (Swarm gives it an
    address on the network), and Docker before 23.0 then shuts that server down (moby/moby#44378)."""
    current = host.get_fact(ServiceImage, service=service)
    if current == image:
        host.noop(f"service {service} holds {network} on every node that takes user servers")
        return
    if current:
        yield StringCommand("docker", "service", "update", "--detach", "--no-resolve-image", "--image",
                            QuoteString(image), QuoteString(service))
        return
    yield StringCommand(
        "docker", "service", "create", "--detach", "--no-resolve-image", "--name", QuoteString(service),
        "--mode", "global", "--constraint", QuoteString(f"node.labels.{SERVERS_LABEL}==true"),
        "--network", QuoteString(network), "--endpoint-mode", "dnsrr",
        # A new image starts beside the old one: the node never leaves the network meanwhile.
        "--update-order", "start-first", "--limit-cpu", "0.05", "--limit-memory", "32m",
        "--entrypoint", "sleep", QuoteString(image), "infinity")


@operation(is_idempotent=True)
def network_hold_removed(service: str, engine: int):
    """No hold service where the manager's engine does not need one (Docker 23 or newer): one an older engine
    needed is removed after an upgrade."""
    if host.get_fact(ServiceImage, service=service) is None:
        host.noop(f"no service {service}: Docker {engine} keeps a server holding a GPU when its node changes")
        return
    yield StringCommand("docker", "service", "rm", QuoteString(service))


@deploy("Docker Swarm")
def hold_network(target: Target, image: str) -> None:
    """On a cluster's hub host: the network held on the GPU nodes (see network_held_on_nodes) where the manager's
    engine predates the fix (Docker 23); none from then on."""
    if target.cluster and target.cluster.is_manager:
        network = target.settings.network_name
        if target.engine_major >= FIXED_ENGINE:
            network_hold_removed(name=f"No hold service for {network}", service=f"{network}-hold",
                                 engine=target.engine_major)
            return
        network_held_on_nodes(name=f"Network {network} held on every GPU node", service=f"{network}-hold",
                              image=image, network=network)


def node_labels(target: Target, inventory_name: str) -> dict:
    gpus = [gpu for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool]
    labels = {SERVERS_LABEL: "true", INVENTORY_LABEL: inventory_name, GPU_COUNT_LABEL: str(len(gpus))}
    if gpus:
        labels[GPU_MODEL_LABEL] = gpus[0].name
        # What the hub shows and records of each kind the node advertises (placement.node_kinds reads it).
        kinds = {resource_of(gpu.kind, gpu.profile): {"kind": gpu.kind, "label": gpu.label, "share": gpu.share}
                 for gpu in gpus}
        labels[GPU_KINDS_LABEL] = json.dumps(kinds, sort_keys=True, separators=(",", ":"))
    return labels


@deploy("Docker Swarm")
def ensure_swarm(target: Target) -> None:
    cluster = target.cluster
    if cluster is None:
        return
    if cluster.is_manager:
        address = target.settings.swarm_advertise_address or next(iter(target.profile.ipv4), None)
        if address is None:
            raise OperationError("this host has no IPv4 address outside Docker's bridges to advertise to the GPU "
                                 "nodes: set swarm_advertise_address")
        swarm_managed(name="Swarm managed here (the hub host)", advertise_address=address)
        engine_hands_out_gpus_safely(name="Swarm's manager hands out GPUs safely (Docker 23 or newer)")
    else:
        swarm_joined(name="Node in the hub host's swarm", manager_name=cluster.manager)
    if cluster.gpu_node:
        node_labelled(name="Node labelled with its GPUs, taking user servers", manager_name=cluster.manager,
                      labels=node_labels(target, host.name))
    if cluster.is_manager:
        absent_nodes_removed(name="Swarm nodes gone from the inventory", inventory_names=list(cluster.nodes),
                             remove=target.settings.swarm_remove_absent_nodes)
