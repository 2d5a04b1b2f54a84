"""How GPUSwarmSpawner follows a task to running, driven by a scripted stand-in for Swarm's answers: what the
user is told when no node can take the server, how a free-but-not-yet-released GPU is waited for, and what it
reads back. No engine needed."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date

import pytest
from tornado.web import HTTPError

from conftest import hub_user
from gpudockerspawner.gpu_line import GPULine
from gpudockerspawner.swarm import ENFORCER_REJECTION, GPUSwarmSpawner

NO_GPU = "no suitable node (insufficient resources on 2 nodes)"
GPU_NODE = {"ID": "n1", "Status": {"State": "ready"}, "Spec": {"Availability": "active",
            "Labels": {"jupyterhub-gpu.user-servers": "true"}},
            "Description": {"Hostname": "gpu1", "Resources": {"GenericResources": [
                {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-a"}}]}}}


def task(state: str, err: str = "", gpus=()) -> dict:
    return {"ID": "t", "ServiceID": "s", "NodeID": "n1", "DesiredState": "running",
            "Status": {"State": state, "Err": err},
            "AssignedGenericResources": [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": gpu}} for gpu in gpus]}


class ScriptedSwarm:
    """Answers get_task with the next of ``tasks`` (the last one again once they run out), and records what the
    spawner did to the service."""

    def __init__(self, tasks, running_elsewhere=(), services=None):
        self.tasks, self.running_elsewhere, self.done = list(tasks), list(running_elsewhere), []
        # The services there are; by default, those of the tasks running elsewhere.
        self.services = services

    async def get_task(self):
        return self.tasks.pop(0) if len(self.tasks) > 1 else self.tasks[0]

    async def docker(self, method, *args, **kwargs):
        if method == "inspect_node":
            return GPU_NODE
        if method == "nodes":
            return [GPU_NODE]
        if method == "tasks":
            return self.running_elsewhere
        if method == "services":
            services = self.services if self.services is not None else {t["ServiceID"] for t in self.running_elsewhere}
            return [{"ID": service} for service in services]
        raise AssertionError(f"unexpected Docker call {method}")


@pytest.fixture
def spawner(monkeypatch, hub_process_of_this_test):
    def make(tasks, on_exhausted="refuse", running_elsewhere=(), release_wait=60, services=None):
        user = hub_user("ann")
        made = GPUSwarmSpawner(user=user, on_exhausted=on_exhausted, release_wait=release_wait)
        swarm = ScriptedSwarm(tasks, running_elsewhere, services)
        monkeypatch.setattr(made, "get_task", swarm.get_task)
        monkeypatch.setattr(made, "docker", swarm.docker)
        monkeypatch.setattr(GPUSwarmSpawner, "_nodes", lambda self: [GPU_NODE])
        hub_process_of_this_test.gpu_lines["default"] = GPULine(tick=0.05)

        async def removed():
            swarm.done.append("removed")

        async def made_anew():
            swarm.done.append(f"made anew, gpu_wanted={made.gpu_wanted}")
            swarm.tasks = [task("running")]

        monkeypatch.setattr(made, "remove_object", removed)
        monkeypatch.setattr(made, "_new_service", made_anew)
        monkeypatch.setattr(asyncio, "sleep", _no_wait)
        made.gpu_wanted, made.gpu_count = True, 1
        made._chosen = ("NVIDIA-GPU", "NVIDIA-GPU")  # the node's one kind, as _try_take chose it
        return made, swarm

    return make


async def _no_wait(seconds):
    return None


def test_a_running_task_gives_its_gpus_and_node_back(spawner):
    made, _ = spawner([task("pending"), task("starting"), task("running", gpus=["GPU-a"])])
    asyncio.run(made.start_object())
    assert (made.assigned_gpus, made.node, made.home_node) == (["GPU-a"], "gpu1", "n1")


def test_the_gpu_hours_record_the_node_swarm_chose_and_each_poll_that_finds_the_server_running(
        spawner, tmp_path, monkeypatch):
    from gpudockerspawner.usage import UsageLog

    made, swarm = spawner([task("running", gpus=["GPU-a"])])
    made.usage_db = str(tmp_path / "usage.sqlite")
    asyncio.run(made.start_object())
    (hold,) = UsageLog(made.usage_db).holds()
    assert (hold.user, hold.node, hold.gpus, hold.ended) == ("ann", "gpu1", ("GPU-a",), None)
    made.usage().seen(["ann/"], at=hold.started)  # as if long ago
    assert asyncio.run(made.poll()) is None
    # Another hub process closing it (the server gone while no hub watched) ends it at that poll, not before.
    UsageLog(made.usage_db).closed("ann/")
    (closed,) = UsageLog(made.usage_db).holds()
    assert closed.ended > hold.started and closed.reason == "ended while the hub was down"


def test_no_gpu_free_anywhere_is_refused_at_once_with_the_policys_words(spawner):
    held = [task("running", gpus=["GPU-a"])]  # another user's server holds the only GPU
    made, swarm = spawner([task("pending", NO_GPU)], running_elsewhere=held)
    with pytest.raises(HTTPError) as refused:
        asyncio.run(made.start_object())
    assert refused.value.jupyterhub_message == ("All 1 GPUs are in use; try again later, or start a CPU-only "
                                                "server.")
    assert swarm.done == ["removed"]


def test_under_cpu_the_same_case_starts_the_server_without_a_gpu(spawner):
    made, swarm = spawner([task("pending", NO_GPU)], on_exhausted="cpu",
                          running_elsewhere=[task("running", gpus=["GPU-a"])])
    asyncio.run(made.start_object())
    assert swarm.done == ["made anew, gpu_wanted=False"] and made.assigned_gpus == []


def test_under_wait_it_waits_in_line_until_the_gpu_is_released_and_then_asks_swarm_again(spawner):
    made, swarm = spawner([task("pending", NO_GPU)], on_exhausted="wait",
                          running_elsewhere=[task("running", gpus=["GPU-a"])])

    async def scenario():
        start = asyncio.ensure_future(made.start_object())
        for _ in range(50):  # asyncio.sleep does not yield here (see the fixture)
            turn = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(turn.set_result, None)
            await turn
        assert made.gpu_line().place(made._waiter) == 1 and swarm.done == ["removed"]
        # The other server stops: its task is gone, and the line's next look finds the GPU free.
        swarm.running_elsewhere = []
        await asyncio.wait_for(start, 5)

    asyncio.run(scenario())
    assert swarm.done == ["removed", "made anew, gpu_wanted=True"] and made.assigned_gpus == []
    # Placed: the promise settled, the GPU counted for the groups' caps until the server stops.
    assert len(made.gpu_line()) == 0 and made.shared.promised == {} and made.ledger().by_group()[""] == 1


def test_a_gpu_that_no_server_holds_is_waited_for_until_swarm_lets_go(spawner):
    # The stopped server's service is gone, but Swarm still counts its GPU for a moment, and has not yet told its
    # task to stop: the task still looks running.
    made, swarm = spawner([task("pending", NO_GPU), task("pending", NO_GPU), task("running", gpus=["GPU-a"])],
                          running_elsewhere=[task("running", gpus=["GPU-a"])], services=[])
    asyncio.run(made.start_object())
    assert made.assigned_gpus == ["GPU-a"] and swarm.done == []


def test_a_task_rejected_for_a_node_change_is_started_again_and_other_ends_fail_the_spawn(spawner):
    made, swarm = spawner([task("rejected", ENFORCER_REJECTION)])
    asyncio.run(made.start_object())
    assert swarm.done == ["made anew, gpu_wanted=True"]
    made, _ = spawner([task("failed", "starting container failed: no such image")])
    with pytest.raises(RuntimeError, match="failed: starting container failed: no such image"):
        asyncio.run(made.start_object())


def test_a_server_no_node_can_take_for_another_reason_is_refused_with_swarms_reason(spawner):
    made, swarm = spawner([task("pending", "no suitable node (scheduling constraints not satisfied on 2 nodes)")])
    made.gpu_wanted = False
    with pytest.raises(HTTPError) as refused:
        asyncio.run(made.start_object())
    told = refused.value.jupyterhub_message
    assert "No node can take your server now (no suitable node (scheduling constraints" in told
    assert swarm.done == ["removed"]


MIG_1G, RTX = "NVIDIA-MIG-A100-SXM4-80GB-1g-10gb", "NVIDIA-GPU-GeForce-RTX-4090"
LAB_NODE = {"ID": "n2", "Status": {"State": "ready"}, "Spec": {"Availability": "active", "Labels": {
    "jupyterhub-gpu.user-servers": "true",
    "jupyterhub-gpu.gpu-kinds": json.dumps({
        MIG_1G: {"kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "label": "MIG 1g.10gb slice of an A100-SXM4-80GB",
                 "share": 0.1429},
        RTX: {"kind": "NVIDIA GeForce RTX 4090", "label": "GeForce RTX 4090", "share": 1.0}})}},
    "Description": {"Hostname": "lab", "Resources": {"GenericResources": [
        {"NamedResourceSpec": {"Kind": kind, "Value": uuid}}
        for kind, uuid in [(MIG_1G, "MIG-1"), (MIG_1G, "MIG-2"), (RTX, "GPU-r1"), (RTX, "GPU-r2")]]}}}


def holding(*units: tuple[str, str]) -> dict:
    return {"ServiceID": "s", "NodeID": "n2", "DesiredState": "running", "Status": {"State": "running"},
            "AssignedGenericResources": [{"NamedResourceSpec": {"Kind": kind, "Value": uuid}} for kind, uuid in units]}


def test_on_a_node_of_two_kinds_a_server_asks_swarm_for_the_kind_chosen_and_any_takes_the_freest(monkeypatch):
    running = [holding((MIG_1G, "MIG-1"))]

    async def docker(method, *args, **kwargs):
        return {"nodes": [LAB_NODE], "tasks": running, "services": [{"ID": "s"}]}[method]

    def spawner(**options) -> GPUSwarmSpawner:
        made = GPUSwarmSpawner(user=hub_user("ann"), user_options=options)
        monkeypatch.setattr(made, "docker", docker)
        return made

    monkeypatch.setattr(GPUSwarmSpawner, "_nodes", lambda self: [LAB_NODE])
    slice_ = spawner(gpu_kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    # The form's choices: each kind with its label and its free units of all the nodes'.
    assert slice_.kinds() == {"NVIDIA A100-SXM4-80GB MIG 1g.10gb": "MIG 1g.10gb slice of an A100-SXM4-80GB",
                              "NVIDIA GeForce RTX 4090": "GeForce RTX 4090"}
    availability = asyncio.run(slice_.gpu_availability())
    assert [(c.label, c.free, c.total) for c in availability.kinds] == [
        ("MIG 1g.10gb slice of an A100-SXM4-80GB", 1, 2), ("GeForce RTX 4090", 2, 2)]
    assert asyncio.run(slice_._try_take()) == "taken" and slice_._chosen[1] == MIG_1G
    # "Any": the kind with the most free.
    anyone = spawner()
    assert asyncio.run(anyone._try_take()) == "taken" and anyone._chosen[1] == RTX
    # Both GPUs of the kind chosen held: refused in words that name the kind, before Swarm is asked.
    running[:] = [holding((RTX, "GPU-r1")), holding((RTX, "GPU-r2"))]
    with pytest.raises(HTTPError) as refused:
        made = spawner(gpu_kind="NVIDIA GeForce RTX 4090")
        made._why_not(asyncio.run(made._try_take()))
    assert refused.value.jupyterhub_message == (
        "All 2 GPUs of the kind asked for (GeForce RTX 4090) are in use; try again later, or start a CPU-only server.")
    # What the hold records: the unit's kind and its share of a whole GPU.
    slice_.assigned_gpus = ["MIG-2"]
    assert slice_._held_kind() == {"kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "share": 0.1429}
    # Two nodes made from one stand-in (the same UUIDs on each) count as the eight units they are.
    monkeypatch.setattr(GPUSwarmSpawner, "_nodes", lambda self: [LAB_NODE, {**LAB_NODE, "ID": "n3"}])
    assert spawner().gpu_source.total() == 8 and spawner().gpu_source.total("NVIDIA GeForce RTX 4090") == 4


def test_on_a_cluster_too_a_poll_past_the_end_of_the_gpu_budget_stops_the_service_and_says_why(spawner, tmp_path,
                                                                                               monkeypatch):
    from gpudockerspawner.usage import UsageLog

    made, swarm = spawner([task("running", gpus=["GPU-a"])])
    today = date.today().toordinal()  # a term from yesterday to tomorrow: an hour ago is in it at any time of day
    made.usage_db, made.gpu_hours = str(tmp_path / "usage.sqlite"), 0.5
    made.budget_period = {"start": date.fromordinal(today - 1).isoformat(),
                          "end": date.fromordinal(today + 1).isoformat()}
    asyncio.run(made.start_object())
    assert asyncio.run(made.poll()) is None  # within its half hour
    made.usage().opened("ann/", ["GPU-a"], node="gpu1", at=time.time() - 3600)  # an hour held: past the end

    async def stopped():
        swarm.done.append("stopped")

    monkeypatch.setattr(made, "stop", stopped)
    said = asyncio.run(made.poll())
    assert said == "its GPU budget this term ran out (1 of 0.5 GPU-hours)" and swarm.done == ["stopped"]
    assert UsageLog(made.usage_db).open_holds()[0].reason == "culled: " + said
