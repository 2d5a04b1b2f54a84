"""A GPU cluster on Docker Swarm, deployed over SSH by the same deploy: a hub host (the manager, no GPU) and two
GPU nodes with two stand-in GPUs each, all docker-in-docker targets running Debian 13 with systemd and Docker 26,
reached as a user with sudo; a third node joins later. Swarm hands out the GPUs (generic resources); the tests
read what each server got from the hub's GPU table and from the server's own process, on its node. From Docker 23
on, Swarm keeps a task holding a GPU when its node changes (moby/moby#44378): the deploy runs no hold service, and
no task is ever shut down for "no longer meets constraints"."""

from __future__ import annotations

import json
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gpudockerspawner.placement import resource_of, resource_variable
from testbed import STATE
from testbed.nvidia import FAKE_GPUS, LAB_GPUS, set_gpu_work
from testbed.probe import PROBE
from testbed.smoke import DEBIAN_12_IMAGES, Deployment, deploy_twice
from testbed.targets import SYSTEMD_SUDO, TargetHost, remove_targets, start_targets, write_inventory_file
from testbed.wait import until

pytestmark = pytest.mark.slow

PROFILES = [{"name": "Standard"}]
# Where Swarm names a task's stand-in GPUs: the variable of their kind's resource.
GPU_VARIABLE = resource_variable(resource_of(FAKE_GPUS[0][2]))
# The third node's units in its pool: one MIG 1g.10gb device of its A100 and one of its RTX 4090s (gpu_ids).
SLICE, SLICE_KIND = LAB_GPUS[0].migs[1].uuid, f"{LAB_GPUS[0].name} MIG 1g.10gb"
RTX, RTX_KIND = LAB_GPUS[1].uuid, LAB_GPUS[1].name


def cluster_member(target: TargetHost, group: str, repository) -> TargetHost:
    target.groups = [group]
    # This machine's kernel has no IPsec ESP, which an encrypted overlay needs (the preflight refuses it, see below):
    # the servers' traffic crosses the test bed's own network in clear.
    target.data.update({**repository.inventory_data(), "image_profiles": PROFILES, **DEBIAN_12_IMAGES,
                        "swarm_network_encrypted": False})
    return target


@pytest.fixture(scope="module")
def cluster(engine, nvidia_repository):
    (manager,) = start_targets(engine, 1, prefix="swarmhub", kinds=[SYSTEMD_SUDO])
    nodes = start_targets(engine, 2, prefix="gpunode", gpus=True, kinds=[SYSTEMD_SUDO] * 2)
    targets = [cluster_member(manager, "hub", nvidia_repository),
               *(cluster_member(node, "gpu_nodes", nvidia_repository) for node in nodes)]
    deployment = Deployment(engine, targets, write_inventory_file(targets, STATE / "targets-swarm.json"), [])
    try:
        deploy_twice(deployment)
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


def hostname(deployment: Deployment, target: TargetHost) -> str:
    return deployment.run(target, "hostname").strip()


def node_state(deployment: Deployment, manager: TargetHost, node: str) -> str:
    return deployment.run(manager, f"docker node inspect {node} --format '{{{{.Status.State}}}}'").strip()


def placed(hub) -> dict[str, tuple[str, str]]:
    """{user: (node, GPU)} from the hub's GPU table, for servers holding one GPU."""
    return {server["user"]: (server["node"], server["gpus"][0])
            for server in hub.gpu_table()["servers"] if server["gpus"]}


def environments(deployment: Deployment, node: TargetHost, user: str) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of ``user``'s container on ``node`` as created (what the NVIDIA runtime reads), and that
    of its server process (what CUDA reads)."""
    container = deployment.run(node, f"docker ps --quiet --filter label=com.docker.swarm.service.name=jupyter-{user}")
    created = json.loads(deployment.run(node,
                                        f"docker inspect --format '{{{{json .Config.Env}}}}' {container.strip()}"))
    raw = deployment.run(node, f"docker exec -u 1000 {container.strip()} cat /proc/1/environ")
    return (dict(item.split("=", 1) for item in created),
            dict(item.split("=", 1) for item in raw.split("\0") if "=" in item))


def start_all(cluster: Deployment, users: list[str], options: dict | None = None) -> None:
    """Start ``users``' servers at once (with each one's spawn ``options``, where given); where one does not come
    up, the hub's log and the services say why."""
    hub = cluster.hub(cluster.targets[0])
    for user in users:
        hub.ensure_user(user)
    try:
        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(lambda user: hub.start_server(user, timeout=180, options=(options or {}).get(user)),
                          users))
    except (TimeoutError, OSError) as error:
        said = cluster.run(cluster.targets[0],
                           "docker service ls; docker node ls; docker logs --tail 80 jupyterhub 2>&1")
        raise AssertionError(f"{error}\n{said}") from error


def refusal(hub, user: str) -> tuple[float, str]:
    """Seconds until a spawn that must fail is refused, and what the user was told."""
    hub.ensure_user(user)
    started = time.monotonic()
    response = hub.api("POST", f"/users/{user}/server", json={})
    told = response.text
    if response.status_code < 400:
        with hub.session.get(f"{hub.url}/hub/api/users/{user}/server/progress", stream=True, timeout=60,
                             verify=hub.ca_file) as events:
            told = "".join(line for line in events.iter_lines(decode_unicode=True))
    return time.monotonic() - started, told


def test_the_first_deploy_forms_the_swarm_and_the_second_changes_nothing_on_any_host(cluster):
    manager, *nodes = cluster.targets
    second = cluster.runs[1]
    assert second.returncode == 0 and not second.totals.get("success"), second.changed_operations()
    assert second.results["totals"]["hosts"] > 0
    lines = cluster.run(manager, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'").split("\n")
    assert sorted(line for line in lines if line) == sorted(
        [f"{hostname(cluster, manager)} Ready Leader"] + [f"{hostname(cluster, node)} Ready " for node in nodes])
    for node in nodes:
        described = cluster.run(manager, f"docker node inspect {hostname(cluster, node)} --format "
                                "'{{json .Description.Resources.GenericResources}} {{json "
                                ".Spec.Labels}}'")
        for _, uuid, _, _ in FAKE_GPUS:
            assert uuid in described
        assert '"jupyterhub-gpu.gpu-count":"2"' in described
        assert '"jupyterhub-gpu.gpu-model":"Stand-in GPU"' in described
        assert '"default-runtime": "nvidia"' in cluster.run(node, "cat /etc/docker/daemon.json")
    # The join token went from the manager to the node's engine and nowhere else.
    token = cluster.run(manager, "docker swarm join-token --quiet worker").strip()
    assert all(token not in deploy.log for deploy in cluster.runs)
    assert cluster.run(manager, "docker version --format '{{.Server.Version}}'").startswith("26.")
    assert "jupyternet-hold" not in cluster.run(manager, "docker service ls --format '{{.Name}}'")


def gpu_figures(hub) -> dict[tuple[str, str], float | None]:
    """{(node, GPU): utilisation} as the hub's GPU service last read the samplers."""
    response = hub.get("/services/gpus/api/gpus")
    assert response.status_code == 200, response.text[:300]
    return {(row["node"], row["uuid"]): row.get("utilization") for row in response.json()["gpus"]}


def test_the_hub_reads_every_gpu_nodes_gpus_through_a_sampler_on_each(cluster):
    manager, *nodes = cluster.targets
    hub = cluster.hub(manager)
    busy = (hostname(cluster, nodes[1]), FAKE_GPUS[1][1])
    set_gpu_work(cluster.engine.containers.get(nodes[1].container_id), busy[1], 64, 512)
    try:
        figures = until(lambda: (lambda f: f if f.get(busy) == 64 else None)(gpu_figures(hub)), 60,
                        "the second node's busy GPU in the hub's figures")
    finally:
        set_gpu_work(cluster.engine.containers.get(nodes[1].container_id), busy[1], 0, 0)
    assert set(figures) == {(hostname(cluster, node), uuid) for node in nodes for _, uuid, _, _ in FAKE_GPUS}
    # One sampler task on each GPU node, none on the hub host (it takes no servers).
    tasks = cluster.run(manager, "docker service ps --filter desired-state=running --format '{{.Node}}' "
                        "jupyterhub-gpu-sampler").split()
    assert sorted(tasks) == sorted(hostname(cluster, node) for node in nodes)


def shut_down_for_constraints(cluster: Deployment) -> str:
    """Every task of a user's server that Swarm shut down because its node no longer met its constraints."""
    return cluster.run(cluster.targets[0],
                       "docker service ls --quiet --filter name=jupyter- | xargs -r docker service "
                       "ps --no-trunc --format '{{.Name}} {{.Error}}' | grep 'no longer meets constraints' || true")


def test_four_users_get_gpus_across_both_nodes_and_a_fifth_is_told_at_once(cluster):
    manager, *nodes = cluster.targets
    by_name = {hostname(cluster, node): node for node in nodes}
    hub = cluster.hub(manager)
    start_all(cluster, ["ann", "ben", "cat", "dan"])
    table = placed(hub)
    assert sorted(table) == ["ann", "ben", "cat", "dan"]
    assert len(set(table.values())) == 4, table
    assert {node for node, _ in table.values()} == set(by_name), table
    for user, (node, gpu) in table.items():
        created, process = environments(cluster, by_name[node], user)
        # Swarm's assignment for the runtime, and CUDA told the same by the image's entry point.
        assert created[GPU_VARIABLE] == gpu and "NVIDIA_VISIBLE_DEVICES" not in created, created
        assert process["CUDA_VISIBLE_DEVICES"] == gpu, process
    # Each node's first server joined it to the network, a change of the node: no server was shut down for it.
    assert shut_down_for_constraints(cluster) == ""
    # As on one host, nobody listens below port 1024 in their server.
    user, (node, _) = next(iter(table.items()))
    container = cluster.run(by_name[node],
                            f"docker ps --quiet --filter label=com.docker.swarm.service.name=jupyter-{user}")
    assert cluster.run(by_name[node], f"docker exec {container.strip()} cat "
                       "/proc/sys/net/ipv4/ip_unprivileged_port_start").strip() == "1024"

    seconds, told = refusal(hub, "eve")
    assert "All 4 GPUs are in use; try again later, or start a CPU-only server." in told, told
    assert seconds < 10, seconds
    assert not hub.servers("eve")

    freed = table["ann"]
    hub.stop_server("ann")
    hub.start_server("eve", timeout=120)
    assert placed(hub)["eve"] == freed
    # A CPU-only server asks Swarm for no GPU, and the runtime is told to show it none.
    hub.ensure_user("cpuonly")
    server = hub.start_server("cpuonly", options={"gpu": "cpu"}, timeout=120)
    cpu_node = server["state"]["node"]
    assert "cpuonly" not in placed(hub)
    created, _ = environments(cluster, by_name[cpu_node], "cpuonly")
    assert created["NVIDIA_VISIBLE_DEVICES"] == "void" and GPU_VARIABLE not in created, created
    hub.stop_server("cpuonly")


def test_a_users_files_are_there_when_their_next_server_starts_on_the_node_that_holds_them(cluster):
    hub = cluster.hub(cluster.targets[0])
    hub.write_file("ben", "notes.txt", "ben's work")
    node = placed(hub)["ben"][0]
    hub.stop_server("ben")
    hub.start_server("ben", timeout=120)
    assert placed(hub)["ben"][0] == node
    assert hub.read_file("ben", "notes.txt") == "ben's work"


def container_of(cluster: Deployment, node: TargetHost, user: str) -> str:
    return cluster.run(node, f"docker ps --quiet --filter label=com.docker.swarm.service.name=jupyter-{user}").strip()


def probe(cluster: Deployment, node: TargetHost, user: str, host: str, port: int) -> str:
    """One TCP connection tried from ``user``'s server, as the user (jovyan) would: open, timeout or the error."""
    return cluster.run(node, f"docker exec -u 1000 {container_of(cluster, node, user)} python3 -c "
                       f"{shlex.quote(PROBE)} {shlex.quote(host)} {port}").strip()


def test_a_users_server_on_a_gpu_node_reaches_the_hubs_api_and_nothing_else_of_the_cluster(cluster):
    manager, *nodes = cluster.targets
    by_name = {hostname(cluster, node): node for node in nodes}
    hub = cluster.hub(manager)
    table = placed(hub)
    (user, (node_name, _)), *others = sorted(table.items())
    node = by_name[node_name]
    other_node = next(target for name, target in by_name.items() if name != node_name)
    assert probe(cluster, node, user, "jupyterhub", 81) == "open"
    # Other users' servers, on this node and on the other, by their addresses on the overlay network; the proxy's
    # API; the node itself (through its docker_gwbridge) and the cluster's other hosts, Swarm's ports included.
    closed = [("jupyterhub-proxy", 8001), ("gateway", 22), (manager.address, 22), (manager.address, 2377),
              (other_node.address, 7946), (node.address, 22)]
    for other, (other_node_name, _) in others:
        other_container = container_of(cluster, by_name[other_node_name], other)
        address = cluster.run(by_name[other_node_name], "docker inspect --format "
                              f"'{{{{.NetworkSettings.Networks.jupyternet.IPAddress}}}}' {other_container}")
        closed.append((address, 8888))
    assert {other_node_name for _, (other_node_name, _) in others} == set(by_name), "servers on both nodes"
    for host, port in closed:
        assert probe(cluster, node, user, host, port) == "timeout", (host, port)
    # The fence is the container's own, set before the server started, and the server cannot undo it: the
    # metadata address is dropped there too (checked by its rule, never probed).
    container = container_of(cluster, node, user)
    rules = cluster.run(node, f"docker exec --privileged {container} iptables -S OUTPUT")
    assert "-A OUTPUT -d 169.254.169.254/32 -j DROP" in rules and "--dport 81 -j ACCEPT" in rules, rules
    read = cluster.run(node, f"docker exec {container} grep -E '^(CapBnd|NoNewPrivs)' /proc/1/status")
    status = dict(line.split(":\t") for line in read.splitlines())
    assert not int(status["CapBnd"], 16) & (1 << 12), "CAP_NET_ADMIN is in the server's bounding set"
    # Swarm's services carry no no-new-privileges flag: the entry point set it for the server, which is not in a
    # sudo group, so setuid sudo cannot raise it.
    assert status["NoNewPrivs"] == "1"
    # The proxy still reaches every server, and each server the hub.
    for name in table:
        hub.write_file(name, "fenced.txt", name)
        assert hub.read_file(name, "fenced.txt") == name


def test_swarms_ports_answer_the_clusters_own_hosts_only(cluster):
    manager, node, *_ = cluster.targets
    # From this machine, which is not in the cluster: dropped. From a node: Swarm's own traffic, which works.
    for port in (2377, 7946):
        with pytest.raises(socket.timeout):
            socket.create_connection((manager.address, port), timeout=3)
    assert cluster.run(node,
                       f"timeout 5 bash -c 'exec 3<>/dev/tcp/{manager.address}/2377' && echo open").strip() == "open"
    for target in cluster.targets:
        cluster.run(target, "/usr/local/sbin/jupyterhub-gpu-firewall --check")


def test_an_encrypted_overlay_on_a_kernel_without_esp_is_refused_before_any_change(cluster):
    refused = cluster.redeploy_with(swarm_network_encrypted=True)
    for target in cluster.targets:
        target.data["swarm_network_encrypted"] = False
    write_inventory_file(cluster.targets, cluster.targets_file)
    assert refused.returncode != 0 and not refused.totals.get("success")
    assert "is built without IPsec ESP (CONFIG_INET_ESP)" in refused.log and "nothing was changed" in refused.log
    assert "Traceback" not in refused.log


def test_a_stopped_worker_engine_stops_its_servers_and_no_gpu_is_handed_out_twice_when_it_returns(cluster):
    manager, *nodes = cluster.targets
    by_name = {hostname(cluster, node): node for node in nodes}
    hub = cluster.hub(manager)
    before = placed(hub)
    down_name = before["ben"][0]
    down = by_name[down_name]
    on_down = sorted(user for user, (node, _) in before.items() if node == down_name)
    # Stopped, not killed: systemd would start a killed engine again at once.
    cluster.run(down, "systemctl stop docker.socket docker.service")
    until(lambda: not any(hub.servers(user) for user in on_down), 150, f"servers on {down_name} no longer listed",
          interval=2)
    # The table agrees with what runs: the other node's servers only, as before.
    assert placed(hub) == {user: where for user, where in before.items() if user not in on_down}

    cluster.run(down, "systemctl start docker.service")
    # Back in the swarm, with none of the stopped servers' containers left on it.
    until(lambda: node_state(cluster, manager, down_name) == "ready"
          and not cluster.run(down, "docker ps --all --quiet --filter name=jupyter-"),
          90, f"{down_name} ready again with no server's container left", interval=2)
    start_all(cluster, on_down)
    after = placed(hub)
    assert len(set(after.values())) == len(after) == len(before), after
    for user in on_down:
        assert after[user][0] == down_name
        assert environments(cluster, down, user)[0][GPU_VARIABLE] == after[user][1]
    assert hub.read_file("ben", "notes.txt") == "ben's work"
    assert shut_down_for_constraints(cluster) == ""


def test_a_third_worker_joins_and_its_gpus_are_used_without_touching_running_servers(cluster, nvidia_repository):
    manager = cluster.targets[0]
    hub = cluster.hub(manager)
    tasks = cluster.run(manager, "docker service ps --filter desired-state=running --format '{{.ID}}' "
                        "$(docker service ls --quiet --filter name=jupyter-)")
    # A node of two kinds (the lab's: an A100 in MIG mode beside two RTX 4090s), of whose units the inventory
    # names two by hand: one MIG 1g.10gb device and one RTX 4090.
    (third,) = start_targets(cluster.engine, 1, prefix="gpunodeb", gpus=LAB_GPUS, kinds=[SYSTEMD_SUDO])
    cluster.targets.append(cluster_member(third, "gpu_nodes", nvidia_repository))
    third.data["gpu_ids"] = [SLICE, RTX]
    write_inventory_file(cluster.targets, cluster.targets_file)
    deploy_twice(cluster)
    assert cluster.run(manager, "docker service ps --filter desired-state=running --format '{{.ID}}' "
                       "$(docker service ls --quiet --filter name=jupyter-)") == tasks
    # Fay asks for a slice, Gus for an RTX 4090: each lands on the one node that has it, with that unit.
    start_all(cluster, ["fay", "gus"], {"fay": {"gpu_kind": SLICE_KIND}, "gus": {"gpu_kind": RTX_KIND}})
    table = placed(hub)
    assert table["fay"] == (hostname(cluster, third), SLICE) and table["gus"] == (hostname(cluster, third), RTX)
    assert len(set(table.values())) == len(table) == 6
    created, server = environments(cluster, third, "fay")
    assert created[resource_variable(resource_of(SLICE_KIND, "1g.10gb"))] == SLICE == server["CUDA_VISIBLE_DEVICES"]
    # The new node's GPUs are sampled too (Swarm started the sampler there: the A100 and the two RTX 4090s, whole),
    # and the GPU-hours name the nodes, with each hold's kind and its share of a whole GPU.
    third_gpus = {(hostname(cluster, third), gpu.uuid) for gpu in LAB_GPUS}
    until(lambda: third_gpus <= set(gpu_figures(hub)), 60, "the third node's GPUs in the hub's figures")
    holds = hub.get("/services/gpus/api/usage", params={"since": 0}).json()["holds"]
    held = {hold["user"]: (hold["node"], hold["gpus"][0]) for hold in holds if hold["ended"] is None}
    assert {user: held[user] for user in table} == table
    kinds = {hold["user"]: (hold["kind"], hold["share"]) for hold in holds if hold["ended"] is None}
    assert kinds["fay"] == (SLICE_KIND, 0.1429) and kinds["gus"] == (RTX_KIND, 1.0)


def test_the_line_for_a_gpu_and_the_group_rules_hold_in_the_cluster_too(cluster):
    manager = cluster.targets[0]
    hub = cluster.hub(manager)
    before = placed(hub)
    assert len(before) == 6  # the three nodes' GPUs are all held
    changed = cluster.redeploy_with(gpu_on_exhausted="wait", gpu_groups={"students": {"max_gpus": 1}, "staff": {}})
    assert changed.returncode == 0, changed.log[-3000:]
    assert placed(hub) == before  # the hub restarted; the servers and their GPUs did not
    for group, users in {"students": ["hal", "ivy"], "staff": ["jon"]}.items():
        for user in users:
            hub.ensure_user(user)
        assert hub.api("POST", f"/groups/{group}", json={"users": users}).status_code in (201, 409)

    def said(text: str) -> bool:
        return text in cluster.run(manager, "docker logs jupyterhub 2>&1")

    # Hal, Ivy and Jon press Start in that order (each request answers once the hub has put them in line).
    with ThreadPoolExecutor(3) as requests:
        for place, user in enumerate(["hal", "ivy", "jon"], start=1):
            requests.submit(hub.api, "POST", f"/users/{user}/server", json={})
            until(lambda: said(f"{user}/: waiting for a GPU, {place} in line"), 30, f"{user} {place} in line", 0.5)
    # A holder stops: the first in line gets the GPU Swarm lets go of.
    first = sorted(before)[0]
    hub.stop_server(first)
    until(lambda: (hub.servers("hal").get("") or {}).get("ready"), 120, "Hal's server ready", 1)
    assert placed(hub)["hal"] == before[first]
    # Another stops: Ivy is next, but the students hold all their rule allows, so Jon (staff) gets it; Ivy waits on.
    second = sorted(before)[1]
    hub.stop_server(second)
    until(lambda: (hub.servers("jon").get("") or {}).get("ready"), 120, "Jon's server ready", 1)
    assert placed(hub)["jon"] == before[second]
    assert (hub.servers("ivy").get("") or {}).get("pending") == "spawn"
    # Hal stops: the students' GPU comes back to them, for Ivy.
    hub.stop_server("hal")
    until(lambda: (hub.servers("ivy").get("") or {}).get("ready"), 120, "Ivy's server ready", 1)
    assert placed(hub)["ivy"] == before[first]
