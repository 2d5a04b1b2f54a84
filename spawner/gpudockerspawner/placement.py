"""What the deploy and the Swarm spawner agree on about a swarm of GPU nodes, and how a task's placement reads:
plain data, no Docker client, so that the deploy imports it without a hub."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

# GPU nodes advertise their GPUs and MIG devices as named generic resources (`node-generic-resources`), one
# resource kind per kind of unit ("NVIDIA-GPU-A100-SXM4-80GB", "NVIDIA-MIG-A100-SXM4-80GB-1g-10gb"): a service asks
# for a count of one kind, and Swarm places it on a node that has that many free. Swarm puts the units it gave a task
# in the variable DOCKER_RESOURCE_<KIND> (upper-cased), which NVIDIA's runtime reads through `swarm-resource` (a
# comma-separated list of such variables, whose devices it joins). Nodes deployed before kinds advertised every unit
# as plain "NVIDIA-GPU": every resource whose name starts with "NVIDIA-" is read as ours.
GPU_RESOURCE = "NVIDIA-GPU"
MIG_RESOURCE = "NVIDIA-MIG"
RESOURCE_PREFIX = "NVIDIA-"
RESOURCE_VARIABLE_PREFIX = "DOCKER_RESOURCE_"
# Node labels the deploy sets: where user servers run, what GPUs a node has, and which inventory host it is.
LABEL_PREFIX = "jupyterhub-gpu."
SERVERS_LABEL = LABEL_PREFIX + "user-servers"
GPU_COUNT_LABEL = LABEL_PREFIX + "gpu-count"
GPU_MODEL_LABEL = LABEL_PREFIX + "gpu-model"
INVENTORY_LABEL = LABEL_PREFIX + "inventory-name"
# What each resource kind a node advertises is, as JSON: {resource: {"kind": …, "label": …, "share": …}}.
GPU_KINDS_LABEL = LABEL_PREFIX + "gpu-kinds"
# Words of the scheduler's message for a task that no node can take for want of a resource.
NO_RESOURCES = "insufficient resources"


def resource_of(kind: str, profile: str = "") -> str:
    """The generic resource kind a node advertises its units of ``kind`` as, in letters, digits and "-" (as the
    variable Swarm names after it can hold): "NVIDIA-GPU-GeForce-RTX-4090"; with a MIG device's ``profile`` (its
    kind is "<model> MIG <profile>"), "NVIDIA-MIG-A100-SXM4-80GB-1g-10gb"."""
    def words(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")

    if profile:
        model = kind.removesuffix(f" MIG {profile}")
        return f"{MIG_RESOURCE}-{words(model.removeprefix('NVIDIA '))}-{words(profile)}"
    return f"{GPU_RESOURCE}-{words(kind.removeprefix('NVIDIA '))}"


def resource_variable(resource: str) -> str:
    """The variable a task's units of ``resource`` are named in (swarmkit's genericresource.EnvFormat)."""
    return (RESOURCE_VARIABLE_PREFIX + resource).upper()


def _named(resources: Iterable[Mapping] | None) -> list[tuple[str, str]]:
    """Our named resources, as (resource kind, value: a unit's UUID), in the order listed."""
    named = (resource.get("NamedResourceSpec") or {} for resource in resources or [])
    return [(spec["Kind"], spec["Value"]) for spec in named if spec.get("Kind", "").startswith(RESOURCE_PREFIX)]


def assigned_units(task: Mapping) -> list[tuple[str, str]]:
    """The units Swarm gave a task, as (resource kind, UUID): ``AssignedGenericResources`` in the Engine API's
    documentation, ``GenericResources`` in what Docker 20.10 answers."""
    return _named(task.get("AssignedGenericResources") or task.get("GenericResources"))


def assigned_gpus(task: Mapping) -> list[str]:
    """The UUIDs of the units Swarm gave a task."""
    return [uuid for _, uuid in assigned_units(task)]


def node_units(node: Mapping) -> list[tuple[str, str]]:
    """The units a node advertises (its engine's ``node-generic-resources`` of ours), as (resource kind, UUID)."""
    return _named(node.get("Description", {}).get("Resources", {}).get("GenericResources"))


def node_gpus(node: Mapping) -> list[str]:
    """The UUIDs of the units a node advertises."""
    return [uuid for _, uuid in node_units(node)]


def node_kinds(node: Mapping) -> dict[str, dict]:
    """What each resource kind of a node's is, from the deploy's label ({resource: {"kind", "label", "share"}});
    a resource the label does not describe (a node deployed before kinds, or labelled by hand) is a kind of its
    own, named as advertised, a whole GPU."""
    try:
        described = json.loads(node.get("Spec", {}).get("Labels", {}).get(GPU_KINDS_LABEL) or "{}")
    except ValueError:
        described = {}
    if not isinstance(described, dict):
        described = {}
    kinds = {}
    for resource, _ in node_units(node):
        about = described.get(resource) if isinstance(described.get(resource), dict) else {}
        kinds[resource] = {"kind": str(about.get("kind") or resource), "label": str(about.get("label") or resource),
                           "share": float(about.get("share") or 1.0)}
    return kinds


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
