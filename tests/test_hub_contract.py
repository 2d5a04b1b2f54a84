"""hub.json, the contract between the deploy and the hub: what the deploy writes reads back as the same contract on
the hub's side, and a key one side does not know is refused in words (a deploy and a hub image of other versions),
never dropped."""

from __future__ import annotations

import json

import pytest

from jupyterhub_gpu.settings import from_host_data
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import contract, gpu_check
from roles.services import hub_settings
from tests.test_hub_config import IMAGES, PROFILE
from tests.test_injection import GPUS


def written(data: dict) -> dict:
    """hub.json as the deploy writes it for ``data``, on a host with one GPU."""
    made = hub_settings(Target(settings=from_host_data("host1", data), profile=PROFILE, gpus=GPUS), IMAGES)
    return json.loads(json.dumps(contract.dump(made), sort_keys=True))


def test_what_the_deploy_writes_the_hub_reads_back_whole():
    for data in ({}, {"authenticator": "ldap", "ldap_server_address": "ldap.example.org", "allow_all": True,
                      "ldap_bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"]}):
        document = written(data)
        assert contract.dump(contract.load(document)) == document
    read = contract.load(written({"gpu_groups": {"students": {"max_gpus": 2}}}))
    assert read.traits["GPUDockerSpawner.gpu_groups"] == {"students": {"max_gpus": 2}}
    assert isinstance(read.spawner.profiles[0], contract.Profile) and read.authenticator.ldap.looks_up_dn is False


def test_a_key_that_one_side_does_not_know_is_refused_naming_it():
    document = written({})
    document["spawner"]["shared_folders"] = {}
    del document["culler"]["max_age"]
    with pytest.raises(contract.ContractError) as refused:
        contract.load(document)
    assert str(refused.value) == ("hub.json.culler: missing max_age (the deploy and the hub's image are of different "
                                  "versions: deploy again)")
    document["culler"]["max_age"] = 0
    with pytest.raises(contract.ContractError, match=r"hub.json.spawner: unknown shared_folders"):
        contract.load(document)


def test_the_gpu_check_reads_its_user_port_and_gpu_profile_from_the_same_file():
    hub = gpu_check.Hub(written({}))
    assert (hub.api_url, hub.user) == ("http://127.0.0.1:81/hub/api", "gpu-check")
    assert gpu_check.gpu_profile(hub.profiles) == "GPU (CUDA)"
    with pytest.raises(gpu_check.Failure, match="FAILED at driver: the hub has no GPU to hand out"):
        gpu_check.gpu_profile([profile for profile in hub.profiles if not profile["gpu"]])
