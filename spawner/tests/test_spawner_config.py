"""GPUDockerSpawner's configuration surface: validation, the spawn form, and the hooks it fills in."""

import asyncio

import pytest
from traitlets import TraitError

from conftest import hub_user
from gpudockerspawner import GPUDockerSpawner

UUID = "GPU-5f1b0c2e-8a4d-4f3e-9b1a-0c2d3e4f5a6b"


def spawner(groups=(), **config) -> GPUDockerSpawner:
    return GPUDockerSpawner(user=hub_user("ann", groups), **config)


def form(s: GPUDockerSpawner) -> str:
    return asyncio.run(s.get_options_form())


def test_bad_pools_are_refused_when_the_hub_starts():
    with pytest.raises(TraitError, match="more than once"):
        spawner(gpu_ids="0,1,1")
    with pytest.raises(TraitError, match="must be resolved"):
        spawner(gpu_ids="auto")
    with pytest.raises(TraitError, match="at least 1"):
        spawner(gpus_per_user=0)


def test_spawn_form_offers_cpu_only_to_users_who_may_have_a_gpu():
    text = form(spawner(gpu_ids=["0", "1"], gpus_per_user=2))
    assert '<option value="gpu" selected>2 GPUs (2 of 2 free)</option>' in text
    assert '<option value="cpu">CPU only</option>' in text and "2 of 2 GPUs free" in text
    s = spawner(gpu_ids=["0"])
    assert s.options_from_form({"gpu": ["cpu"]}) == {"gpu": "cpu"}


def test_no_gpu_choice_outside_the_gpu_groups():
    outsider = spawner(gpu_ids=["0"], gpu_groups=["gpu-users"], groups=["students"])
    member = spawner(gpu_ids=["0"], gpu_groups=["gpu-users"], groups=["gpu-users"])
    assert not outsider.may_use_gpu() and form(outsider) == ""
    assert member.may_use_gpu() and "CPU only" in form(member)


def test_cuda_visible_devices_follow_the_runtime():
    filtered = spawner(gpu_ids=["2", "3"], gpus_per_user=2)
    filtered.assigned_gpus = ["2", "3"]
    assert filtered._cuda_visible_devices() == "0,1"  # NVIDIA's runtime renumbers what it shows
    wsl = spawner(gpu_ids=["2", "3"], devices_filtered=False)
    wsl.assigned_gpus = ["3"]
    assert wsl._cuda_visible_devices() == "3"
    uuids = spawner(gpu_ids=[UUID])
    uuids.assigned_gpus = [UUID]
    assert uuids._cuda_visible_devices() == UUID


def test_configured_extra_hooks_are_kept_beside_the_gpu_ones():
    s = spawner(
        gpu_ids=["0"],
        extra_host_config={"shm_size": "1g"},
        extra_create_kwargs=lambda sp: {"labels": {"team": "vision"}},
    )
    s.assigned_gpus = ["0"]
    host = s.extra_host_config(s)
    assert host["shm_size"] == "1g"
    assert host["device_requests"] == [{"driver": "", "device_ids": ["0"], "capabilities": [["gpu"]]}]
    labels = s.extra_create_kwargs(s)["labels"]
    assert labels["team"] == "vision" and labels["gpudockerspawner.gpus"] == "0"
    assert labels["gpudockerspawner.owner"] == "ann/"


def test_gpu_containers_get_their_own_shm_size_and_cpu_containers_dockers():
    s = spawner(gpu_ids=["0"], gpu_shm_size="4G", extra_host_config=lambda sp: {"pids_limit": 512})
    assert "shm_size" not in s.extra_host_config(s)
    s.assigned_gpus = ["0"]
    assert s.extra_host_config(s) == {
        "pids_limit": 512, "shm_size": "4G",
        "device_requests": [{"driver": "", "device_ids": ["0"], "capabilities": [["gpu"]]}],
    }


PROFILES = {"GPU (CUDA)": "hub/cuda:1", "Standard": "hub/std:1"}


def test_where_images_hold_gpus_or_not_the_image_is_the_hardware_choice():
    member = spawner(gpu_ids=["0"], allowed_images=PROFILES, gpu_images=["GPU (CUDA)"], image="hub/std:1")
    # Whoever may have a GPU gets the first GPU image by default; the image choice replaces the hardware one.
    assert member._default_pick() == "GPU (CUDA)"
    text = form(member)
    assert ('<option value="GPU (CUDA)" selected>GPU (CUDA) — 1 GPU (1 of 1 free)</option>'
            '<option value="Standard">Standard</option>' in text and 'name="gpu"' not in text)
    # Names are escaped in the form.
    odd = spawner(gpu_ids=["0"], allowed_images={'<b>"x"</b>': "i:1", "y": "i:2"}, gpu_images=["y"], image="i:1")
    assert '<option value="&lt;b&gt;&quot;x&quot;&lt;/b&gt;">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</option>' in \
        form(odd)
    assert member._wants_gpu("GPU (CUDA)", "hub/cuda:1") and not member._wants_gpu("Standard", "hub/std:1")
    # The same image under another name holds no GPU: what counts is the profile picked.
    assert not member._wants_gpu("Standard", "hub/cuda:1")
    outsider = spawner(gpu_ids=["0"], gpu_groups=["gpu-users"], allowed_images=lambda s: {"Standard": "hub/std:1"},
                       gpu_images=["GPU (CUDA)"], image="hub/std:1")
    assert outsider._default_pick() == "Standard" and form(outsider) == ""
    assert not outsider._wants_gpu("GPU (CUDA)", "hub/cuda:1")



def test_limits_follow_the_image_picked_at_each_start():
    s = spawner(allowed_images=PROFILES, cpu_limit=4.0, mem_limit="16G",
                limits_by_image={"Standard": {"cpu_limit": 1.0, "mem_limit": "2G"}})
    s._apply_limits("Standard")
    assert (s.cpu_limit, s.mem_limit) == (1.0, 2 * 2**30)
    # An image without limits of its own gets the configured ones again, not the last pick's.
    s._apply_limits("GPU (CUDA)")
    assert (s.cpu_limit, s.mem_limit) == (4.0, 16 * 2**30)


def test_the_form_says_what_is_free_and_what_start_would_do_now():
    rules = {"students": {"max_gpus": 1}, "research": {"gpus_per_user": 2}}

    def member(group: str, on_exhausted: str) -> GPUDockerSpawner:
        s = spawner(gpu_ids=["0", "1", "2"], gpu_groups=rules, on_exhausted=on_exhausted, allowed_images=PROFILES,
                    gpu_images=["GPU (CUDA)"], image="hub/std:1", groups=[group])
        s.user.name = f"{group}-{on_exhausted}"
        return s

    research = member("research", "refuse")
    assert "— 2 GPUs (3 of 3 free)" in form(research) and "3 of 3 GPUs free" in form(research)
    # A student takes the one GPU students may hold together: another student's GPU profile is greyed out under
    # refuse, with the rule named; under wait it stays, and says Start means a place in line.
    first = member("students", "refuse")
    assert asyncio.run(first._try_take()) == "taken"
    refused = form(member("students", "refuse"))
    assert ('<option value="GPU (CUDA)" disabled>GPU (CUDA) — 1 GPU (none free now)</option>'
            '<option value="Standard" selected>Standard</option>') in refused
    assert ("2 of 3 GPUs free. A GPU server cannot start now. (Your group&#x27;s GPUs are all in use: students holds "
            "1 of its 1 (group students: 1 GPU each, at most 1 together).)") in refused
    waiting = form(member("students", "wait"))
    assert '<option value="GPU (CUDA)" selected>GPU (CUDA) — 1 GPU (wait in line)</option>' in waiting
    assert "Start a GPU server to wait in line for the next GPU released." in waiting
    assert "— 2 GPUs (2 of 3 free)" in form(research)


def test_gpu_groups_set_by_hand_get_the_deploys_refusals():
    """A hub configured by hand is refused what the deploy's settings refuse, in the same words."""
    with pytest.raises(TraitError, match=r"gpu_groups\['students'\]: unknown key 'max_gpu'; did you mean 'max_gpus'\?"):
        spawner(gpu_groups={"students": {"max_gpu": 2}})
    with pytest.raises(TraitError, match=r"gpus_per_user = 0; allowed: a whole number from 1 to 64"):
        spawner(gpu_groups={"students": {"gpus_per_user": 0}})
    capped = spawner(gpu_ids=["0", "1"], gpu_groups={"students": {"gpus_per_user": 2, "max_gpus": 1}})
    with pytest.raises(TraitError, match=r"max_gpus 1 is less than the 2 GPUs each member's server gets"):
        capped.may_use_gpu()
    listed = spawner(gpu_groups=["students", "staff"])
    assert listed.gpu_groups == {"students": {}, "staff": {}}
    assert listed.gpu_policy is listed.gpu_policy  # made once, not at each question
    listed.gpus_per_user = 2
    assert listed.gpu_policy.rules_for(["staff"])[0].gpus_per_user == 2  # and anew when a setting changes


LAB = {  # the lab host of spawner/tests/fixtures/nvidia-smi, as the deploy describes it
    "MIG-1e099852-3624-56c0-8064-c5db1211e44f": {"kind": "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "share": 0.4286,
                                                 "label": "MIG 3g.40gb slice of an A100-SXM4-80GB"},
    "MIG-8243111b-d4c4-587a-a96d-da04583b36e2": {"kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "share": 0.1429,
                                                 "label": "MIG 1g.10gb slice of an A100-SXM4-80GB"},
    "MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6": {"kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "share": 0.1429,
                                                 "label": "MIG 1g.10gb slice of an A100-SXM4-80GB"},
    "GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7": {"kind": "NVIDIA GeForce RTX 4090", "share": 1,
                                                 "label": "GeForce RTX 4090"},
}


def test_the_form_offers_each_kind_with_what_is_free_and_a_start_takes_the_kind_chosen():
    def person(name, **options):
        made = GPUDockerSpawner(user=hub_user(name), gpu_ids=list(LAB), gpu_units=LAB)
        made.user_options = options
        return made

    first = person("ann", gpu_kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    asyncio.run(first._take_gpus(wants_gpu=True))
    assert first.assigned_gpus == ["MIG-8243111b-d4c4-587a-a96d-da04583b36e2"]
    second = person("bob", gpu_kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    asyncio.run(second._take_gpus(wants_gpu=True))
    assert second.assigned_gpus == ["MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6"]  # two slices of one GPU
    text = form(person("cy"))
    assert ('<option value="NVIDIA A100-SXM4-80GB MIG 1g.10gb" disabled>MIG 1g.10gb slice of an A100-SXM4-80GB — 0 of '
            '2 free</option>') in text
    assert '<option value="NVIDIA GeForce RTX 4090">GeForce RTX 4090 — 1 of 1 free</option>' in text
    assert '<option value="" selected>Any kind — 2 of 4 free</option>' in text
    # A third asking for a slice of that kind is refused (refuse is the default), not given another kind.
    third = person("cy", gpu_kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    with pytest.raises(Exception, match=r"All 2 GPUs of the kind asked for \(MIG 1g.10gb slice of an A100-SXM4-80GB\) "
                                        r"are in use"):
        asyncio.run(third._take_gpus(wants_gpu=True))
    assert third.assigned_gpus == []
    with pytest.raises(Exception, match="No GPU of the kind 'NVIDIA H100' is offered"):
        asyncio.run(person("dee", gpu_kind="NVIDIA H100")._take_gpus(wants_gpu=True))


def test_an_image_may_hold_only_the_kinds_it_names_in_order():
    made = GPUDockerSpawner(user=hub_user("ann"), gpu_ids=list(LAB), gpu_units=LAB,
                            kinds_by_image={"Big": ["NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB MIG 3g.40gb"]})
    made.user_options = {"image": "Big"}
    asyncio.run(made._take_gpus(wants_gpu=True))
    assert made.assigned_gpus == ["GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7"]
    made.user_options = {"image": "Big", "gpu_kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb"}
    with pytest.raises(Exception, match="No GPU of the kind"):
        made.wanted_kinds()


def test_a_shared_gpu_is_said_to_be_shared_and_its_memory_unreserved():
    text = form(spawner(gpu_ids=["0", "1"], users_per_gpu=3))
    assert ("2 of 2 GPUs free; each GPU is shared with up to 2 other servers, and its memory is not reserved for "
            "yours") in text
    assert "shared" not in form(spawner(gpu_ids=["0", "1"]))


def test_a_groups_rule_may_restrict_the_kinds_its_members_hold():
    rules = {"students": {"gpu_kinds": ["NVIDIA A100-SXM4-80GB MIG 1g.10gb"]}, "staff": {}}

    def member(name, group, **options):
        made = GPUDockerSpawner(user=hub_user(name, [group]), gpu_ids=list(LAB), gpu_units=LAB, gpu_groups=rules)
        made.user_options = options
        return made

    student = member("ann", "students")
    assert list(student.kinds()) == ["NVIDIA A100-SXM4-80GB MIG 1g.10gb"]
    assert "#gpu_kind" not in form(student) and "GeForce" not in form(student)  # one kind for her: no choice
    asyncio.run(student._take_gpus(wants_gpu=True))
    assert LAB[student.assigned_gpus[0]]["kind"] == "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    with pytest.raises(Exception, match="No GPU of the kind 'NVIDIA GeForce RTX 4090' is offered"):
        member("bob", "students", gpu_kind="NVIDIA GeForce RTX 4090").wanted_kinds()
    staff = member("cy", "staff", gpu_kind="NVIDIA GeForce RTX 4090")
    assert len(staff.kinds()) == 3
    asyncio.run(staff._take_gpus(wants_gpu=True))
    assert staff.assigned_gpus == ["GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7"]
    assert str(staff.gpu_policy.rules_for(["students"])[0]) == (
        "group students: 1 GPU each, only NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    with pytest.raises(TraitError, match=r"gpu_kinds = \[\]; allowed: a list of one or more names"):
        GPUDockerSpawner(user=hub_user("dee"), gpu_groups={"students": {"gpu_kinds": []}})


def test_a_member_restricted_to_slices_is_refused_for_slices_and_waits_for_slices_only():
    rules = {"students": {"gpu_kinds": ["NVIDIA A100-SXM4-80GB MIG 1g.10gb"]}}
    people = [GPUDockerSpawner(user=hub_user(name, ["students"]), gpu_ids=list(LAB), gpu_units=LAB, gpu_groups=rules)
              for name in ("ann", "ben", "cy")]
    for person in people[:2]:
        asyncio.run(person._take_gpus(wants_gpu=True))
    with pytest.raises(Exception, match=r"All 2 GPUs of the kind asked for \(MIG 1g.10gb slice of an A100-SXM4-80GB\)"):
        asyncio.run(people[2]._take_gpus(wants_gpu=True))
    assert people[2]._asked_kinds() == ["NVIDIA A100-SXM4-80GB MIG 1g.10gb"]  # what she would wait for in line
