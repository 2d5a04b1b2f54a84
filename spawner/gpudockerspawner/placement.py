"""What the deploy and the Swarm spawner agree on about a swarm of GPU nodes, and how a task's placement reads:
plain data, no Docker client, so that the deploy imports it without a hub."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The generic resource kind that GPU nodes advertise (`node-generic-resources`); Swarm puts the GPUs it gave a
# task in the variable DOCKER_RESOURCE_<kind>, which NVIDIA's runtime reads through `swarm-resource`.
GPU_RESOURCE = "NVIDIA-GPU"
GPU_RESOURCE_VARIABLE = f"DOCKER_RESOURCE_{GPU_RESOURCE}"
# Node labels the deploy sets: where user servers run, what GPUs a node has, and which inventory host it is.
LABEL_PREFIX = "jupyterhub-gpu."
SERVERS_LABEL = LABEL_PREFIX + "user-servers"
GPU_COUNT_LABEL = LABEL_PREFIX + "gpu-count"
GPU_MODEL_LABEL = LABEL_PREFIX + "gpu-model"
INVENTORY_LABEL = LABEL_PREFIX + "inventory-name"
# Words of the scheduler's message for a task that no node can take for want of a resource.
NO_RESOURCES = "insufficient resources"


def _named(resources: Iterable[Mapping] | None) -> list[str]:
    """The values of our kind's named resources (one per GPU: its UUID), in the order listed."""
    return [
        resource["NamedResourceSpec"]["Value"]
        for resource in resources or []
        if resource.get("NamedResourceSpec", {}).get("Kind") == GPU_RESOURCE
    ]


def assigned_gpus(task: Mapping) -> list[str]:
    """The GPUs Swarm gave a task: ``AssignedGenericResources`` in the Engine API's documentation,
    ``GenericResources`` in what Docker 20.10 answers."""
    return _named(task.get("AssignedGenericResources") or task.get("GenericResources"))


def node_gpus(node: Mapping) -> list[str]:
    """The GPUs a node advertises (its engine's ``node-generic-resources`` of our kind)."""
    return _named(node.get("Description", {}).get("Resources", {}).get("GenericResources"))


def serving_nodes(nodes: Iterable[Mapping]) -> list[Mapping]:
    """The nodes that take user servers: labelled so by the deploy, ready and active."""
    return [
        node for node in nodes
        if node.get("Spec", {}).get("Labels", {}).get(SERVERS_LABEL) == "true"
        and node.get("Status", {}).get("State") == "ready"
        and node.get("Spec", {}).get("Availability") == "active"
    ]


def task_address(task: Mapping, network: str) -> str | None:
    """The task's address on ``network`` (by name), without its prefix length."""
    for attachment in task.get("NetworksAttachments") or []:
        if attachment.get("Network", {}).get("Spec", {}).get("Name") == network and attachment.get("Addresses"):
            return attachment["Addresses"][0].split("/", 1)[0]
    return None


def unplaceable(task: Mapping) -> str | None:
    """The scheduler's reason when a task waits for a node that no node can be (pending, "no suitable node")."""
    status = task.get("Status", {})
    if status.get("State") != "pending":
        return None
    said = status.get("Err") or status.get("Message") or ""
    return said if "no suitable node" in said else None
