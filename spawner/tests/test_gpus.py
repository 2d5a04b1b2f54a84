"""The one GPU policy both spawners follow, and where each one's GPUs come from, without a hub or Docker."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from tornado.web import HTTPError

from conftest import hub_user
from gpudockerspawner.gpus import GPUPolicy, GroupRule, HostPool, Ledger, SwarmResources
from gpudockerspawner.pool import GPUPool

LOG = logging.getLogger("test")


def host_pool(ids=("0", "1"), users_per_gpu=1) -> HostPool:
    pool = GPUPool(ids, users_per_gpu)
    return HostPool(list(ids), users_per_gpu, lambda: pool)


def swarm_resources(count: int) -> SwarmResources:
    async def free(kind=None) -> int:
        return count

    return SwarmResources(lambda kind=None: count, free, lambda wanted, kinds: count >= wanted)


def test_who_may_have_a_gpu_is_decided_once_for_both_sources():
    policy = GPUPolicy.from_groups(["gpu-users"])
    for source in (host_pool(), swarm_resources(4)):
        assert policy.may_have(["gpu-users", "staff"], source)
        assert not policy.may_have(["students"], source)
        assert GPUPolicy().may_have([], source)
    # Nowhere to get one: nobody may, whatever their groups.
    assert not GPUPolicy().may_have([], host_pool(ids=()))
    assert not GPUPolicy().may_have([], swarm_resources(0))


def test_none_free_refuses_with_the_same_words_for_both_sources_or_lets_the_server_start_cpu_only():
    for source, where, said in [
        (host_pool(), "", "All 2 GPUs are in use; try again later, or start a CPU-only server."),
        (host_pool(users_per_gpu=3), "", "All 2 GPUs are in use (3 users per GPU); try again later, or start a "
                                         "CPU-only server."),
        (swarm_resources(4), " on the node that holds your files",
         "All 4 GPUs are in use on the node that holds your files; try again later, or start a CPU-only server."),
    ]:
        with pytest.raises(HTTPError) as refused:
            GPUPolicy(on_exhausted="refuse").none_free(source, where)
        assert refused.value.jupyterhub_message == said and refused.value.status_code == 503
        assert GPUPolicy(on_exhausted="cpu").none_free(source, where) == said
        assert GPUPolicy(on_exhausted="wait").none_free(source, where) == said


def test_the_hosts_pool_reserves_now_and_swarm_names_them_when_it_places_the_server():
    pool = host_pool()
    assert pool.reserve("ann/", 1) == ["0"] and pool.reserve("ben/", 1) == ["1"]
    assert pool.reserve("cat/", 1) is None
    assert pool.release("ann/") == ["0"] and pool.reserve("cat/", 1) == ["0"]
    swarm = swarm_resources(2)
    assert swarm.reserve("ann/", 1) == [] and swarm.release("ann/") == []
    assert swarm_resources(0).reserve("ann/", 1) is None


def test_after_a_hub_restart_what_runs_wins_over_what_the_database_recorded(caplog):
    pool = host_pool()
    pool.reserve("ann/", 1)
    with caplog.at_level(logging.WARNING):
        assert pool.restored("ann/", ["1"], LOG) == ["0"]
    assert "the running container holds ['0']; keeping ['0']" in caplog.text
    assert host_pool(ids=()).restored("ann/", ["0"], LOG) == []
    # Swarm read the task's GPUs back when it started: they are the record.
    assert swarm_resources(2).restored("ann/", ["GPU-a"], LOG) == ["GPU-a"]


def test_both_spawners_ask_the_same_policy(monkeypatch):
    from gpudockerspawner import GPUDockerSpawner
    from gpudockerspawner.swarm import GPUSwarmSpawner

    user = hub_user("ann", ["students"])
    local = GPUDockerSpawner(user=user, gpu_ids=["0"], gpu_groups=["gpu-users"])
    swarm = GPUSwarmSpawner(user=user, gpu_groups=["gpu-users"])
    monkeypatch.setattr(GPUSwarmSpawner, "_nodes", lambda self: [
        {"Description": {"Resources": {"GenericResources": [
            {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-a"}}]}}}])
    assert swarm.gpu_source.total() == 1 and local.gpu_source.total() == 1
    assert not local.may_use_gpu() and not swarm.may_use_gpu()
    user.groups.append(SimpleNamespace(name="gpu-users"))
    assert local.may_use_gpu() and swarm.may_use_gpu()


RULES = {"students": {"gpus_per_user": 1, "max_gpus": 2}, "research": {"gpus_per_user": 2},
         "interns": {"max_gpus": 1}}


def test_each_group_has_its_rule_and_a_member_of_several_gets_the_most_generous_one_with_room():
    policy = GPUPolicy.from_groups(RULES, gpus_per_user=1)
    assert policy.rules_for(["staff"]) == []
    assert policy.rules_for(["students", "research"]) == [GroupRule("research", 2), GroupRule("students", 1, 2)]
    # Of two one-GPU rules, the larger cap first; a group left out of the rule gets the default count.
    assert policy.rules_for(["interns", "students"]) == [GroupRule("students", 1, 2), GroupRule("interns", 1, 1)]
    assert GPUPolicy.from_groups([]).rules_for(["anyone"]) == [GroupRule("", 1)]
    # gpu_users (the deploy's GPU check) come under rule "": the default count, no group's cap.
    assert policy.rules_for([""]) == [GroupRule("", 1)]
    ledger = Ledger()
    ledger.hold("s1/", "students", 1)
    assert policy.rule_with_room(["students", "interns"], ledger) == GroupRule("students", 1, 2)
    ledger.hold("s2/", "students", 1)
    # Students hold their two: the intern rule still has room for a member of both.
    assert policy.rule_with_room(["students", "interns"], ledger) == GroupRule("interns", 1, 1)
    ledger.hold("i1/", "interns", 1)
    assert policy.rule_with_room(["students", "interns"], ledger) is None
    assert policy.rule_with_room(["research"], ledger) == GroupRule("research", 2)
    assert ledger.drop("s1/") == 1 and ledger.drop("s1/") == 0
    assert policy.rule_with_room(["students"], ledger) == GroupRule("students", 1, 2)


def test_a_capped_group_is_named_with_its_rule_in_the_refusal():
    policy = GPUPolicy.from_groups(RULES, on_exhausted="refuse")
    ledger = Ledger()
    ledger.hold("s1/", "students", 1)
    ledger.hold("s2/", "students", 1)
    said = policy.capped(["students"], ledger)
    assert said == ("Your group's GPUs are all in use: students holds 2 of its 2 (group students: 1 GPU each, at "
                    "most 2 together).")
    with pytest.raises(HTTPError) as refused:
        policy.answer(said)
    assert refused.value.jupyterhub_message == said
    assert GPUPolicy.from_groups(RULES, on_exhausted="wait").answer(said) == said
