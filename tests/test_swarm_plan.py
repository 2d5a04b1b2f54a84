"""A cluster's parts without hosts: which host plays which part, what the Swarm and NVIDIA roles would run on
a hub host and a GPU node, how the runtime's config.toml is edited, and how the spawner reads a task."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pyinfra.api import Inventory, OperationError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.docker import DockerNetwork
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.server import Command, TmpDir
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from gpudockerspawner.placement import (
    assigned_gpus,
    node_gpus,
    node_kinds,
    resource_of,
    serving_nodes,
    task_address,
    unplaceable,
)
from jupyterhub_gpu.apt import PackageManagerState
from jupyterhub_gpu.cluster import Cluster, cluster_of
from jupyterhub_gpu.facts import DockerServerVersion, EngineRuntimes, GPUInventory, HostProfile, TargetProfile
from jupyterhub_gpu.settings import HubSettings, InventoryError
from jupyterhub_gpu.target import Target
from roles.network import ensure_cluster_firewall, ensure_network, firewall_script
from roles.nvidia_toolkit import KEYRING, PACKAGES, RUNTIME_CONFIG, ensure_toolkit, swarm_resources, with_swarm_resource
from roles.preflight import _check_cluster
from roles.swarm import ServiceImage, SwarmNodes, SwarmState, ensure_swarm, hold_network, node_labels
from testbed.nvidia import LAB_GPUS, units_of
from tests.plan import commands_of, plan
from tests.test_nvidia_toolkit_plan import REPO, SOURCES, TWO_GPUS, UBUNTU_24

MANAGER = Cluster(manager="hub.lab", nodes=("gpu1.lab", "gpu2.lab"), this_host="hub.lab")
NODE = Cluster(manager="hub.lab", nodes=("@local",), this_host="@local")
# (The one planned host answers for the node and for the manager: the manager's address, 10.0.0.5, is its own.)
ACTIVE_NODE = {"LocalNodeState": "active", "NodeID": "n1", "NodeAddr": "10.0.0.5",
               "RemoteManagers": [{"Addr": "10.0.0.5:2377"}]}
LABELS = {"jupyterhub-gpu.user-servers": "true", "jupyterhub-gpu.inventory-name": "@local",
          "jupyterhub-gpu.gpu-count": "2", "jupyterhub-gpu.gpu-model": "RTX A6000",
          "jupyterhub-gpu.gpu-kinds": '{"NVIDIA-GPU-RTX-A6000":{"kind":"RTX A6000","label":"RTX A6000","share":1.0}}'}
A6000 = "DOCKER_RESOURCE_NVIDIA-GPU-RTX-A6000"


def inventory(**groups):
    hosts = {name: SimpleNamespace(name=name) for members in groups.values() for name in members}
    return SimpleNamespace(get_group=lambda group, default=None: [hosts[n] for n in groups.get(group, [])] or default)


def test_which_part_a_host_plays():
    assert cluster_of(inventory(all=["a"]), "a", {"a"}) is None
    cluster = cluster_of(inventory(hub=["h"], gpu_nodes=["g1", "g2"]), "g2", {"h", "g1", "g2"})
    assert cluster == Cluster("h", ("g1", "g2"), "g2") and cluster.gpu_node and not cluster.is_manager
    assert cluster_of(inventory(hub=["h"], gpu_nodes=["h", "g"]), "h", {"h", "g"}).gpu_node
    for groups, host, active, said in [
        ({"hub": ["h1", "h2"], "gpu_nodes": ["g"]}, "g", {"h1", "h2", "g"}, "exactly one host"),
        ({"gpu_nodes": ["g"]}, "g", {"g"}, "it has none"),
        ({"hub": ["h"], "gpu_nodes": ["g"], "others": ["x"]}, "x", {"h", "g", "x"}, "neither the hub group"),
        ({"hub": ["h"], "gpu_nodes": ["g"]}, "g", {"g"}, "not part of this run"),
    ]:
        with pytest.raises(InventoryError, match=said):
            cluster_of(inventory(**groups), host, active)


def test_live_restore_asked_for_in_a_cluster_is_refused_before_any_change():
    _check_cluster("h", HubSettings(engine_live_restore=True), None)
    _check_cluster("h", HubSettings(), MANAGER)  # the default gives way
    with pytest.raises(InventoryError, match="engine_live_restore = True: Docker refuses swarm mode"):
        _check_cluster("h", HubSettings(engine_live_restore=True), MANAGER)
    assert not Target(HubSettings(), HostProfile(**UBUNTU_24), cluster=MANAGER).live_restore


def test_a_shared_folder_in_a_cluster_needs_storage_every_node_reaches():
    course = {"mount": "/home/jovyan/shared/course", "read": ["students"]}
    _check_cluster("h", HubSettings(shared_folders={"course": course}), None)  # one host: a volume of its own
    _check_cluster("h", HubSettings(shared_folders={"course": {**course, "path": "/mnt/nfs/course"}}), MANAGER)
    with pytest.raises(InventoryError, match=r"shared_folders\['course'\] has no path: in a cluster a server may start "
                                             "on any GPU node"):
        _check_cluster("h", HubSettings(shared_folders={"course": course}), MANAGER)


def test_images_made_elsewhere_are_refused_in_a_cluster_whose_servers_their_entry_point_must_fence_in():
    pulled = HubSettings(image_profiles=[{"name": "Standard"}, {"name": "CUDA", "gpu": True,
                                                                "image": "nvcr.io/nvidia/pytorch:24.05-py3"}])
    _check_cluster("h", pulled, None)
    with pytest.raises(InventoryError, match=r"image_profiles\[1\].image = 'nvcr.io/nvidia/pytorch:24.05-py3': in a "
                                             "cluster each server is fenced in"):
        _check_cluster("h", pulled, MANAGER)
    with pytest.raises(InventoryError, match="singleuser_image = 'quay.io/jupyter/base-notebook:x'"):
        _check_cluster("h", HubSettings(singleuser_image="quay.io/jupyter/base-notebook:x"), NODE)


def test_the_hub_host_of_a_cluster_offers_gpu_profiles_but_runs_no_gpu_itself():
    hub = Target(HubSettings(), HostProfile(**UBUNTU_24), TWO_GPUS, cluster=MANAGER)
    assert hub.gpu_pool == () and hub.hands_out_gpus and any(p.gpu for p in hub.offered_profiles)
    node = Target(HubSettings(), HostProfile(**UBUNTU_24), TWO_GPUS, cluster=NODE)
    assert len(node.gpu_pool) == 2 and not node.runs_hub


def test_swarm_resource_replaces_the_commented_default_or_goes_before_the_first_table():
    default = ['#accept-nvidia-visible-devices-as-volume-mounts = false', '#swarm-resource = "DOCKER_RESOURCE_GPU"',
               '', '[nvidia-container-cli]', 'ldconfig = "@/sbin/ldconfig"']
    assert with_swarm_resource(default, [A6000]).splitlines() == [
        default[0], f'swarm-resource = "{A6000}"', '', *default[3:]]
    assert with_swarm_resource(with_swarm_resource(default, [A6000]).splitlines(), [A6000]) is None
    assert with_swarm_resource(["[nvidia-container-cli]", "x = 1"], [A6000]).splitlines() == [
        f'swarm-resource = "{A6000}"', "[nvidia-container-cli]", "x = 1"]
    # A node deployed before kinds named one variable: the line is replaced, not added.
    assert with_swarm_resource(['swarm-resource = "DOCKER_RESOURCE_NVIDIA-GPU"'], ["A", "B"]) == (
        'swarm-resource = "A,B"\n')


def test_a_node_of_two_models_and_mig_slices_advertises_one_resource_per_kind_and_says_what_each_is():
    units = GPUInventory("/usr/bin/nvidia-smi", tuple(units_of(LAB_GPUS)))
    lab = Target(HubSettings(), HostProfile(**UBUNTU_24), units, cluster=NODE)
    advertised = swarm_resources(lab)
    assert sorted({resource for resource, _ in advertised}) == [
        "NVIDIA-GPU-GeForce-RTX-4090", "NVIDIA-MIG-A100-SXM4-80GB-1g-10gb", "NVIDIA-MIG-A100-SXM4-80GB-3g-40gb"]
    # Never the GPU in MIG mode whole: its three MIG devices and the two whole GPUs.
    assert len(advertised) == 5 and all(uuid.startswith(("MIG-", "GPU-")) for _, uuid in advertised)
    assert not any(uuid == LAB_GPUS[0].uuid for _, uuid in advertised)
    labels = node_labels(lab, "gpu1.lab")
    node = {"Spec": {"Labels": labels}, "Description": {"Resources": {"GenericResources": [
        {"NamedResourceSpec": {"Kind": resource, "Value": uuid}} for resource, uuid in advertised]}}}
    kinds = node_kinds(node)
    assert kinds["NVIDIA-MIG-A100-SXM4-80GB-1g-10gb"] == {
        "kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "label": "MIG 1g.10gb slice of an A100-SXM4-80GB",
        "share": 0.1429}
    assert kinds["NVIDIA-GPU-GeForce-RTX-4090"]["kind"] == "NVIDIA GeForce RTX 4090"
    # Swarm upper-cases the variable it names after a resource; the names hold nothing else a variable cannot.
    assert resource_of("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me", "1g.10gb+me") == "NVIDIA-MIG-H100-80GB-HBM3-1g-10gb-me"
    # A resource no label describes (a node deployed before kinds) is a kind of its own.
    old = {"Spec": {"Labels": {}}, "Description": {"Resources": {"GenericResources": [
        {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-a"}}]}}}
    assert node_kinds(old) == {"NVIDIA-GPU": {"kind": "NVIDIA-GPU", "label": "NVIDIA-GPU", "share": 1.0}}


def toolkit_facts(daemon_json: dict | None, config_toml: list[str] | None, engine: dict | None = None):
    return {
        EngineRuntimes: engine or {"runtimes": ["nvidia", "runc"], "default": "runc"},
        DebPackages: {name: ["1.17.8-1"] for name in PACKAGES + ["curl", "gnupg"]},
        File: lambda path: {"mode": 644, "size": 1} if path in (KEYRING, SOURCES) else None,
        Sha1File: lambda path: __import__("hashlib").sha1(f"deb [signed-by={KEYRING}] {REPO} /\n".encode()).hexdigest(),
        Directory: lambda path: {"mode": 755} if path in ("/etc/apt/sources.list.d", "/etc/nvidia-container-runtime",
                                                          "/etc/docker") else None,
        PackageManagerState: {"busy": [], "interrupted": False},
        TmpDir: "/tmp",
        FileContents: lambda path: (json.dumps(daemon_json).splitlines() if daemon_json else None)
        if path.endswith("daemon.json") else config_toml,
    }


def test_a_gpu_node_advertises_its_gpus_with_the_nvidia_runtime_as_default_and_restarts_once(monkeypatch):
    runtime = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    node = Target(HubSettings(), HostProfile(**UBUNTU_24), TWO_GPUS, cluster=NODE)
    planned = [(name.removeprefix("NVIDIA Container Toolkit | "), commands)
               for name,
               commands in plan(monkeypatch, toolkit_facts(runtime, ['#swarm-resource = "X"']), ensure_toolkit, node)
               if commands]
    assert planned == [
        ("Docker engine advertises its GPUs to the swarm, with the nvidia runtime as its default",
         ["upload /etc/docker/daemon.json", "chmod 644 /etc/docker/daemon.json"]),
        ("NVIDIA's runtime takes the GPUs that Swarm assigned",
         [f"upload {RUNTIME_CONFIG}", f"chmod 644 {RUNTIME_CONFIG}"]),
        ("Restart the Docker engine for the nvidia runtime", ["systemctl restart docker"]),
    ]
    converged = {**runtime, "node-generic-resources": [f"NVIDIA-GPU-RTX-A6000={gpu.uuid}" for gpu in TWO_GPUS.gpus],
                 "default-runtime": "nvidia"}
    facts = toolkit_facts(converged, [f'swarm-resource = "{A6000}"'],
                          {"runtimes": ["nvidia", "runc"], "default": "nvidia"})
    assert not any(commands for _, commands in plan(monkeypatch, facts, ensure_toolkit, node))
    # The same files, but an engine still running with runc as its default (a deploy stopped before the restart).
    stale = toolkit_facts(converged, [f'swarm-resource = "{A6000}"'])
    assert [name for name, commands in plan(monkeypatch, stale, ensure_toolkit, node) if commands] == [
        "NVIDIA Container Toolkit | Restart the Docker engine for the nvidia runtime"]


def swarm_facts(swarm: dict, nodes: list | None = None, version: str = "20.10.24"):
    return {SwarmState: swarm, SwarmNodes: nodes or [], DockerServerVersion: version}


def test_the_hub_host_inits_the_swarm_once(monkeypatch):
    hub = Target(HubSettings(), HostProfile(**UBUNTU_24, ipv4=("10.0.0.5",)), cluster=MANAGER)
    planned = dict(plan(monkeypatch, swarm_facts({"LocalNodeState": "inactive"}), ensure_swarm, hub))
    assert planned["Docker Swarm | Swarm managed here (the hub host)"] == [
        "docker swarm init --advertise-addr 10.0.0.5"]
    managing = {"LocalNodeState": "active", "ControlAvailable": True, "NodeAddr": "10.0.0.5"}
    assert not any(commands for _, commands in plan(monkeypatch, swarm_facts(managing), ensure_swarm, hub))
    set_address = Target(HubSettings(swarm_advertise_address="192.168.7.1"), hub.profile, cluster=MANAGER)
    assert "docker swarm init --advertise-addr 192.168.7.1" in dict(
        plan(monkeypatch, swarm_facts({}), ensure_swarm,
             set_address))["Docker Swarm | Swarm managed here (the hub host)"]


def test_a_gpu_node_joins_and_is_labelled_through_the_manager_then_nothing(monkeypatch):
    node = Target(HubSettings(), HostProfile(**UBUNTU_24), TWO_GPUS, cluster=NODE)
    # The manager's facts are asked of the manager: here the one planned host answers for both.
    monkeypatch.setattr(Inventory, "get_host", lambda self, name, default=None: self.hosts["@local"])
    planned = plan(monkeypatch, swarm_facts({"LocalNodeState": "inactive"}), ensure_swarm, node)
    changes = {name: commands for name, commands in planned if commands}
    # The join runs on the controller (the token read from the manager and handed on), never as a shell line.
    assert list(changes) == ["Docker Swarm | Node in the hub host's swarm",
                             "Docker Swarm | Node labelled with its GPUs, taking user servers"]
    assert all(command.startswith("FunctionCommand(")
               for commands in changes.values() for command in commands), changes
    labelled = [{"id": "n1", "hostname": "gpu1", "state": "ready", "availability": "active", "labels": LABELS}]
    assert not any(commands for _,
                   commands in plan(monkeypatch, swarm_facts(ACTIVE_NODE, labelled), ensure_swarm, node))
    elsewhere = {**ACTIVE_NODE, "RemoteManagers": [{"Addr": "192.168.9.9:2377"}]}
    with pytest.raises(OperationError, match="a node of another swarm .*192.168.9.9:2377.*docker swarm leave"):
        plan(monkeypatch, swarm_facts(elsewhere, labelled), ensure_swarm, node)


def test_nodes_gone_from_the_inventory_are_left_with_a_warning_or_drained_when_asked(monkeypatch):
    gone = [{"id": "n9", "hostname": "old", "state": "ready", "availability": "active",
             "labels": {"jupyterhub-gpu.inventory-name": "gpu9.lab"}},
            {"id": "x", "hostname": "theirs", "state": "ready", "availability": "active", "labels": {}}]
    managing = {"LocalNodeState": "active", "ControlAvailable": True, "NodeAddr": "10.0.0.5"}
    profile = HostProfile(**UBUNTU_24, ipv4=("10.0.0.5",))
    name = "Docker Swarm | Swarm nodes gone from the inventory"
    left = dict(plan(monkeypatch, swarm_facts(managing, gone), ensure_swarm,
                     Target(HubSettings(), profile, cluster=MANAGER)))
    assert left[name] == []
    drained = dict(plan(monkeypatch, swarm_facts(managing, gone), ensure_swarm,
                        Target(HubSettings(swarm_remove_absent_nodes=True), profile, cluster=MANAGER)))[name]
    assert drained[0] == "docker node update --availability drain n9" and drained[-1] == "docker node rm --force n9"
    assert not any("theirs" in command or " x" in command for command in drained), "a node the deploy never labelled"


def test_the_network_is_held_on_every_gpu_node_by_one_idle_global_service_before_docker_23(monkeypatch):
    hub = Target(HubSettings(), HostProfile(**UBUNTU_24, docker_server="20.10.24"), cluster=MANAGER)
    planned = dict(plan(monkeypatch, {ServiceImage: None}, hold_network, hub, "jupyterhub-gpu/singleuser:1"))
    (create,) = planned["Docker Swarm | Network jupyternet held on every GPU node"]
    assert create.startswith("docker service create --detach --no-resolve-image --name jupyternet-hold --mode global "
                             "--constraint node.labels.jupyterhub-gpu.user-servers==true --network jupyternet")
    assert "--update-order start-first" in create and create.endswith("jupyterhub-gpu/singleuser:1 infinity")
    assert dict(plan(monkeypatch, {ServiceImage: "jupyterhub-gpu/singleuser:0"}, hold_network, hub,
                     "jupyterhub-gpu/singleuser:1"))["Docker Swarm | Network jupyternet held on every GPU node"] == [
        "docker service update --detach --no-resolve-image --image jupyterhub-gpu/singleuser:1 jupyternet-hold"]
    assert plan(monkeypatch, {ServiceImage: "jupyterhub-gpu/singleuser:1"}, hold_network, hub,
                "jupyterhub-gpu/singleuser:1")[0][1] == []


def test_from_docker_23_no_hold_service_runs_and_one_an_older_engine_needed_is_removed(monkeypatch):
    name = "Docker Swarm | No hold service for jupyternet"
    for profile in (dict(UBUNTU_24, docker_server="26.1.5+dfsg1"), dict(UBUNTU_24, docker_io_candidate="27.5.1")):
        hub = Target(HubSettings(), HostProfile(**profile), cluster=MANAGER)
        planned = plan(monkeypatch, {ServiceImage: None}, hold_network, hub, "jupyterhub-gpu/singleuser:1")
        assert planned == [(name, [])]
    upgraded = Target(HubSettings(), HostProfile(**UBUNTU_24, docker_server="26.1.5+dfsg1"), cluster=MANAGER)
    assert plan(monkeypatch, {ServiceImage: "jupyterhub-gpu/singleuser:0"}, hold_network, upgraded,
                "jupyterhub-gpu/singleuser:1") == [(name, ["docker service rm jupyternet-hold"])]


def test_the_gpu_nodes_are_sampled_by_a_global_service_made_anew_only_when_what_it_runs_changes(monkeypatch):
    from pyinfra.facts.files import File as FileFact

    from roles.gpu_sampler import ServiceLabel, ensure_cluster_sampler, sampler_urls
    from roles.images import Images

    hub = Target(HubSettings(gpu_sample_interval=3), HostProfile(**UBUNTU_24, docker_server="26.1.5+dfsg1"),
                 cluster=MANAGER)
    images = Images(hub="h:1", singleuser="jupyterhub-gpu/singleuser:1", proxy="p:1")
    assert sampler_urls(hub) == ["http://tasks.jupyterhub-gpu-sampler:9400/"]
    facts = {ServiceLabel: None, FileFact: None, Directory: {"mode": 755}, Sha1File: None, TmpDir: "/tmp"}
    planned = dict(plan(monkeypatch, facts, ensure_cluster_sampler, hub, images))
    commands = planned["GPU sampler | GPU sampler on every GPU node"]
    config = next(c for c in commands if "docker config create" in c)
    create = next(c for c in commands if c.startswith("docker service create"))
    for part in ("--mode global", "--constraint node.labels.jupyterhub-gpu.user-servers==true", "--network jupyternet",
                 "--env NVIDIA_VISIBLE_DEVICES=all", "--env NVIDIA_DRIVER_CAPABILITIES=utility",
                 "--env 'GPU_SAMPLER_NODE={{.Node.Hostname}}'", "--user 65534:65534", "--read-only", "--cap-drop ALL",
                 "--entrypoint python3 jupyterhub-gpu/singleuser:1 /opt/gpu-sampler.py --port 9400 --interval 3"):
        assert part in create, (part, create)
    assert "/opt/jupyterhub-gpu/gpu-sampler.py" in config
    # What it was made from, as a label: the same again changes nothing; another interval makes it anew.
    spec = create.split("--label ")[1].split()[0].split("=", 1)[1]
    assert dict(plan(monkeypatch, {**facts, ServiceLabel: spec}, ensure_cluster_sampler, hub, images))[
        "GPU sampler | GPU sampler on every GPU node"] == []
    other = Target(HubSettings(gpu_sample_interval=10), hub.profile, cluster=MANAGER)
    again = dict(plan(monkeypatch, {**facts, ServiceLabel: spec}, ensure_cluster_sampler, other, images))[
        "GPU sampler | GPU sampler on every GPU node"]
    assert again[0] == "docker service rm jupyterhub-gpu-sampler" and "--interval 10" in again[2]
    # A GPU node makes none of this (the hub host does, for every node).
    assert plan(monkeypatch, facts, ensure_cluster_sampler,
                Target(HubSettings(), HostProfile(**UBUNTU_24), cluster=NODE),
                images) == []


def named(*values):
    return [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": value}} for value in values]


def test_the_spawner_reads_a_tasks_gpus_address_and_why_it_waits():
    # Docker 20.10 answers GenericResources, the API's documentation names AssignedGenericResources.
    assert assigned_gpus({"GenericResources": named("GPU-a")}) == ["GPU-a"]
    assert assigned_gpus({"AssignedGenericResources": named("GPU-b", "GPU-c")}) == ["GPU-b", "GPU-c"]
    assert assigned_gpus({"GenericResources": [{"DiscreteResourceSpec": {"Kind": "other", "Value": 1}}]}) == []
    ready = {"Spec": {"Labels": {"jupyterhub-gpu.user-servers": "true"}, "Availability": "active"},
             "Status": {"State": "ready"}, "Description": {"Resources": {"GenericResources": named("GPU-a", "GPU-b")}}}
    down = {**ready, "Status": {"State": "down"}}
    drained = {**ready, "Spec": {**ready["Spec"], "Availability": "drain"}}
    manager = {**ready, "Spec": {"Labels": {}, "Availability": "active"}}
    assert serving_nodes([ready, down, drained, manager]) == [ready] and node_gpus(ready) == ["GPU-a", "GPU-b"]
    attached = {"NetworksAttachments": [{"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.3/24"]},
                                        {"Network": {"Spec": {"Name": "jupyternet"}}, "Addresses": ["10.0.1.7/24"]}]}
    assert task_address(attached, "jupyternet") == "10.0.1.7" and task_address(attached, "other") is None
    waiting = {"Status": {"State": "pending", "Err": "no suitable node (insufficient resources on 2 nodes)"}}
    assert "insufficient resources" in unplaceable(waiting)
    assert unplaceable({"Status": {"State": "pending", "Message": "pending task scheduling"}}) is None
    assert unplaceable({"Status": {"State": "running"}}) is None


def network_facts(found: list | None):
    return {DockerNetwork: lambda object_id: found, TargetProfile: HostProfile(**UBUNTU_24, ipv4=("10.0.0.5",)),
            File: None, Sha1File: None, TmpDir: "/tmp",
            Directory: lambda path: {"mode": 755} if path in ("/usr/local/sbin", "/etc/systemd/system") else None,
            Command: lambda command: "stale", SystemdStatus: {}, SystemdEnabled: {}}


def test_the_overlay_network_is_made_encrypted_unless_asked_not_to(monkeypatch):
    hub = Target(HubSettings(), HostProfile(**UBUNTU_24), cluster=MANAGER)
    made = commands_of(plan(monkeypatch, network_facts(None), ensure_network, hub))
    assert made == ["docker network create jupyternet -d overlay --attachable --opt encrypted"]
    in_clear = Target(HubSettings(swarm_network_encrypted=False), hub.profile, cluster=MANAGER)
    assert commands_of(plan(monkeypatch, network_facts(None), ensure_network, in_clear)) == [
        "docker network create jupyternet -d overlay --attachable"]
    encrypted = [{"EnableIPv6": False, "Options": {"encrypted": ""}}]
    assert commands_of(plan(monkeypatch, network_facts(encrypted), ensure_network, hub)) == []


def test_a_network_that_differs_from_the_settings_stops_the_deploy_before_it_changes_anything(monkeypatch):
    hub = Target(HubSettings(), HostProfile(**UBUNTU_24), cluster=MANAGER)
    # An overlay made in clear (by an earlier release): Docker cannot encrypt it in place.
    with pytest.raises(OperationError, match="jupyternet is not encrypted, and swarm_network_encrypted is True"):
        plan(monkeypatch, network_facts([{"EnableIPv6": False, "Options": {}}]), ensure_network, hub)
    one_host = Target(HubSettings(), HostProfile(**UBUNTU_24))
    # The firewall is IPv4 only: a network with IPv6 would let containers reach each other around it.
    with pytest.raises(OperationError, match="jupyternet has IPv6 on, and the firewall .* is IPv4 only"):
        plan(monkeypatch, network_facts([{"EnableIPv6": True, "Options": {}}]), ensure_network, one_host)


def test_every_host_of_a_cluster_gets_a_firewall_naming_the_clusters_nodes_before_it_joins(monkeypatch):
    both = Cluster(manager="@local", nodes=("@local",), this_host="@local")
    node = Target(HubSettings(), HostProfile(**UBUNTU_24, ipv4=("10.0.0.5",)), cluster=both)
    monkeypatch.setattr(Inventory, "get_host", lambda self, name, default=None: self.hosts["@local"])
    planned = dict(plan(monkeypatch, network_facts(None), ensure_cluster_firewall, node))
    assert planned["Cluster firewall | Firewall script"][0] == "upload /usr/local/sbin/jupyterhub-gpu-firewall"
    assert planned["Cluster firewall | Firewall in force"] == ["/usr/local/sbin/jupyterhub-gpu-firewall"]
    script = firewall_script(node, "cluster", ["10.0.0.5", "10.0.0.6"])
    assert "mode=cluster\n" in script and "nodes='10.0.0.5 10.0.0.6'\n" in script
    assert not commands_of(plan(monkeypatch, network_facts(None), ensure_cluster_firewall,
                                Target(HubSettings(), node.profile)))
