"""What GPUSwarmSpawner asks Swarm for, captured from a stand-in Docker client: no engine needed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import dockerspawner
import pytest

from conftest import hub_user
from gpudockerspawner.swarm import GPUSwarmSpawner


class CapturingDocker:
    """Answers the calls create_object makes, and keeps what it was asked to create."""

    def __init__(self):
        self.created = {}

    async def __call__(self, method, *args, **kwargs):
        if method == "inspect_network":
            return {"IPAM": {"Config": [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]}}
        if method == "create_service":
            self.created = kwargs
            return {"ID": "service-1"}
        if method == "tasks":
            return [{"ID": "task-1"}]
        raise AssertionError(f"unexpected Docker call {method}")


@pytest.fixture
def spawner(monkeypatch):
    monkeypatch.setattr(dockerspawner.DockerSpawner, "get_env", lambda self: {"JUPYTERHUB_API_TOKEN": "t"})
    user = hub_user("ann")
    made = GPUSwarmSpawner(user=user, network_name="jupyternet", image="singleuser:1", fence_network=True,
                           extra_host_config={"cap_drop": ["ALL"], "cap_add": ["SETUID", "SETGID"]})
    made.hub = SimpleNamespace(api_url="http://jupyterhub:81/hub/api/")
    docker = CapturingDocker()
    monkeypatch.setattr(made, "docker", docker)

    async def no_command():
        return ["jupyterhub-singleuser"]

    monkeypatch.setattr(made, "get_command", no_command)
    return made, docker


def test_a_gpu_server_asks_for_generic_resources_and_is_fenced_in_on_the_overlay(spawner):
    made, docker = spawner
    made.gpu_wanted, made.gpu_count = True, 1
    made._chosen = ("NVIDIA GeForce RTX 4090", "NVIDIA-GPU-GeForce-RTX-4090")  # as _try_take chose it
    asyncio.run(made.create_object())
    template = docker.created["task_template"]
    container = template["ContainerSpec"]
    env = dict(item.split("=", 1) for item in container["Env"])
    assert env["JUPYTERHUB_GPU_FENCE"] == "10.0.1.0/24" and env["JUPYTERHUB_GPU_FENCE_PORT"] == "81"
    # NET_ADMIN and SETPCAP for the entry point's fence, which drops them before the server starts.
    assert container["CapabilityAdd"] == ["SETUID", "SETGID", "NET_ADMIN", "SETPCAP"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # Swarm names the GPUs in its own variable
    assert template["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU-GeForce-RTX-4090", "Value": 1}}]
    assert template["RestartPolicy"]["Condition"] == "none"


def test_a_cpu_only_server_asks_for_no_gpu_and_the_runtime_shows_it_none(spawner):
    made, docker = spawner
    asyncio.run(made.create_object())
    template = docker.created["task_template"]
    env = dict(item.split("=", 1) for item in template["ContainerSpec"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "GenericResources" not in (template["Resources"].get("Reservations") or {})
