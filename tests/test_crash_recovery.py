"""The hub comes back by itself after it is killed the way the OOM killer or a power loss kills it, and so do
the user servers after the Docker engine dies: checked through the proxy over verified HTTPS, with the GPU
assignments unchanged. Faults are made from outside, on the target host: SIGKILL, not a graceful stop."""

from __future__ import annotations

import time

import pytest

from testbed.nvidia import FAKE_GPUS
from testbed.storm import stop_all, storm
from testbed.targets import wait_for_port
from testbed.wait import until

pytestmark = pytest.mark.slow

BACK_WITHIN = 60  # seconds: what the hub may take to answer again without anyone's help


@pytest.fixture(scope="module")
def crash_site(deployment):
    """Target 0 with two running servers: one holds a stand-in GPU, one is CPU-only; each has a file."""
    target = deployment.targets[0]
    hub = deployment.hub(target)
    for user, hardware in (("crash-gpu", "gpu"), ("crash-cpu", "cpu")):
        hub.ensure_user(user)
        response = hub.api("POST", f"/users/{user}/server", json={"gpu": hardware})
        assert response.status_code in (201, 202), response.text
        hub.start_server(user)
        hub.write_file(user, "before-the-crash.txt", f"{user} was here")
    yield deployment, target, hub
    for user in ("crash-gpu", "crash-cpu"):  # the GPU goes back for the tests after these
        hub.stop_server(user)


# Each server container on one line: its owner and GPUs labels and the NVIDIA_VISIBLE_DEVICES it runs with.
SERVERS = """for c in $(docker ps -q --filter label=gpudockerspawner.owner); do
  echo "$(docker inspect --format '{{index .Config.Labels "gpudockerspawner.owner"}} {{index .Config.Labels "gpudockerspawner.gpus"}}' $c) $(docker exec $c printenv NVIDIA_VISIBLE_DEVICES)"
done"""  # noqa: E501 (a script's own lines)


def gpu_state(deployment, target, hub) -> dict:
    """Who holds which GPU, read three ways that must agree: the GPU table, the containers' labels and their
    environment."""
    table = {server["user"]: server["gpus"] for server in hub.gpu_table()["servers"]}
    seen = {}
    for line in deployment.output(target, SERVERS).splitlines():
        owner, label, visible = line.split(" ")
        assert visible == (label or "void"), f"{owner}: label {label!r}, NVIDIA_VISIBLE_DEVICES {visible!r}"
        seen[owner.split("/")[0]] = [gpu for gpu in label.split(",") if gpu]
    assert table == seen, f"the GPU table {table} disagrees with the containers {seen}"
    held = [gpu for gpus in seen.values() for gpu in gpus]
    assert len(held) == len(set(held)), f"a GPU is held twice: {seen}"
    return seen


def servers_with_notes(deployment, target, hub, prefix: str, moment: str) -> dict:
    """``<prefix>-gpu`` with a GPU and ``<prefix>-cpu`` without, each server holding a note written ``moment``;
    returns who holds which GPU."""
    for user, hardware in ((f"{prefix}-gpu", "gpu"), (f"{prefix}-cpu", "cpu")):
        hub.ensure_user(user)
        hub.api("POST", f"/users/{user}/server", json={"gpu": hardware}).raise_for_status()
        hub.start_server(user)
        hub.write_file(user, "notes.txt", f"{user} {moment}")
    held = gpu_state(deployment, target, hub)
    assert held[f"{prefix}-gpu"] and not held[f"{prefix}-cpu"]
    return held


def power_cycled(deployment, target, stop_timeout: int = 0):
    """Stop the target's container (every process in it dies) and start it again, as a power cut and a boot;
    returns a client of its hub, at its address now, and when it started. The client checks the certificate for
    the hub's name (the host's, where no hub_names are set), whatever address it came back at."""
    container = deployment.engine.containers.get(target.container_id)
    container.stop(timeout=stop_timeout)
    container.start()
    started = time.monotonic()
    container.reload()
    target.address = container.attrs["NetworkSettings"]["IPAddress"]
    wait_for_port(target.address, 22)
    return deployment.hub(target), started


def servers_back_with_notes(hub, prefix: str, moment: str, started: float, timeout: float = 180) -> None:
    hub.wait_until_answering(timeout=timeout)
    for user in (f"{prefix}-gpu", f"{prefix}-cpu"):
        while not (hub.user(user)["servers"].get("") or {}).get("ready"):
            assert time.monotonic() - started < timeout, f"{user}'s server did not come back"
            time.sleep(1)
        assert hub.read_file(user, "notes.txt") == f"{user} {moment}"


def servers_answer_through_the_proxy(hub, since: float) -> None:
    """Within BACK_WITHIN seconds of the fault ``since``: the hub answers, and (once it has checked the
    servers it found running, which it does after it starts answering) each server is ready and serves its
    file through the proxy."""
    deadline = since + BACK_WITHIN
    hub.wait_until_answering(timeout=deadline - time.monotonic())
    for user in ("crash-gpu", "crash-cpu"):
        while not (hub.user(user)["servers"].get("") or {}).get("ready"):
            assert time.monotonic() < deadline, f"{user}'s server is not ready {BACK_WITHIN}s after the fault"
            time.sleep(1)
        assert hub.read_file(user, "before-the-crash.txt") == f"{user} was here"


def hub_pid(deployment, target) -> str:
    return deployment.output(target, "docker inspect --format '{{.State.Pid}}' jupyterhub")


def wait_for_new_hub_process(deployment, target, old_pid: str) -> None:
    def back() -> bool:
        code, output = deployment.engine.containers.get(target.container_id).exec_run(
            ["docker", "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", "jupyterhub"])
        running, _, pid = output.decode().strip().partition(" ")
        return code == 0 and running == "true" and pid not in ("0", old_pid)

    until(back, BACK_WITHIN, "the hub container running again as a new process", interval=0.5)


def test_hub_killed_three_times_comes_back_each_time_with_every_server_and_gpu(crash_site):
    """Three kills, and the luck taken out: whether the pid that a killed hub's proxy had names a live
    process in the restarted container depends on chance, so before each kill the proxy's pid file, wherever
    the hub keeps it, is made to name pid 1 (which always lives: the restarted hub itself)."""
    deployment, target, hub = crash_site
    before = gpu_state(deployment, target, hub)
    assert before["crash-gpu"] and not before["crash-cpu"]
    (hold,) = gpu_holds(hub, "crash-gpu")
    for _ in range(3):
        deployment.run(target, "docker exec jupyterhub sh -c 'for f in $(find / -name jupyterhub-proxy.pid "
                               "-not -path \"/proc/*\" 2>/dev/null); do echo 1 > $f; done'")
        pid = hub_pid(deployment, target)
        deployment.run(target, f"kill -9 {pid}")
        killed = time.monotonic()
        wait_for_new_hub_process(deployment, target, pid)
        servers_answer_through_the_proxy(hub, since=killed)
        assert gpu_state(deployment, target, hub) == before
    # The GPU-hours record: the same one hold, still open, counting every second through the kills.
    (after,) = gpu_holds(hub, "crash-gpu")
    assert (after["started"], after["ended"], after["gpus"]) == (hold["started"], None, before["crash-gpu"])
    report = hub.get("/services/gpus/api/usage", params={"since": 0}).json()
    assert report["gpu_seconds"]["users"]["crash-gpu"] == pytest.approx(report["until"] - hold["started"], abs=1)


def gpu_holds(hub, user: str) -> list[dict]:
    response = hub.get("/services/gpus/api/usage", params={"since": 0})
    assert response.status_code == 200, response.text[:300]
    return [hold for hold in response.json()["holds"] if hold["user"] == user and hold["ended"] is None]


def test_the_database_volume_keeps_nothing_that_belongs_to_one_run_of_the_hub(crash_site):
    """Pid files, sockets and locks live on the tmpfs that each start of the container gets empty."""
    deployment, target, _ = crash_site
    kept = deployment.output(target, "docker exec jupyterhub ls -A /srv/jupyterhub").split()
    # What persists on purpose: the database, which admin password files were applied, which JupyterHub last ran
    # on the database (an upgrade is detected by it), and the GPU usage record.
    assert set(kept) <= {"jupyterhub.sqlite", "jupyterhub.sqlite-journal", "admin-passwords-applied.json",
                         "jupyterhub-version", "gpu-usage.sqlite", "gpu-usage.sqlite-journal"}, kept
    mounts = deployment.output(target, "docker inspect --format '{{json .HostConfig.Tmpfs}}' jupyterhub")
    assert "/run/jupyterhub" in mounts


def test_no_gpu_held_before_the_crash_is_handed_out_after_it(crash_site):
    deployment, target, hub = crash_site
    held = gpu_state(deployment, target, hub)["crash-gpu"]
    hub.ensure_user("crash-newcomer")
    hub.start_server("crash-newcomer")
    try:
        newcomer = gpu_state(deployment, target, hub)["crash-newcomer"]
        assert newcomer and not set(newcomer) & set(held)
        assert set(newcomer) | set(held) <= {uuid for _, uuid, _, _ in FAKE_GPUS}
    finally:
        hub.stop_server("crash-newcomer")


def test_deploy_run_while_the_hub_is_down_repairs_it(crash_site):
    """The operator's obvious remedy: deploy again while the killed hub is still restarting."""
    deployment, target, hub = crash_site
    before = gpu_state(deployment, target, hub)
    pid = hub_pid(deployment, target)
    deployment.run(target, f"kill -9 {pid}")
    killed = time.monotonic()
    repair = deployment.deploy()
    assert repair.returncode == 0, repair.log[-3000:]
    servers_answer_through_the_proxy(hub, since=killed)
    assert gpu_state(deployment, target, hub) == before
    again = deployment.deploy()
    assert again.totals["success"] == 0, again.changed_operations()


def test_engine_killed_leaves_every_server_running_and_reachable_and_takes_it_back(crash_site):
    """Docker's live-restore (``engine_live_restore``, on by default): while the killed engine is down, the hub
    and every user server go on answering through the proxy; started again, it takes back the same containers,
    none restarted, each with its GPUs, and the hub can start and stop servers on it."""
    deployment, target, hub = crash_site
    before = gpu_state(deployment, target, hub)
    users = ("docker ps -q --filter label=gpudockerspawner.owner | "
             "xargs docker inspect --format '{{.Name}} {{.State.StartedAt}}'")
    containers = deployment.output(target, f"{users}; docker inspect --format '{{{{.State.StartedAt}}}}' jupyterhub")
    deployment.run(target, "kill -9 $(cat /var/run/docker.pid)")
    deployment.run(target, "for i in $(seq 30); do docker info >/dev/null 2>&1 || exit 0; sleep 1; done; exit 1")
    assert hub.version()
    for user in ("crash-gpu", "crash-cpu"):
        assert hub.read_file(user, "before-the-crash.txt") == f"{user} was here"
    # Started again as this host starts it (no systemd here): the package's init script, or dockerd itself
    # where the init script cannot raise its limits (a container).
    started = time.monotonic()
    deployment.run(target, "/etc/init.d/docker start >/dev/null 2>&1 || "
                           "(setsid dockerd >>/var/log/docker.log 2>&1 </dev/null &)")
    deployment.run(target, "for i in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1")
    servers_answer_through_the_proxy(hub, since=started)
    assert deployment.output(target,
                             f"{users}; docker inspect --format '{{{{.State.StartedAt}}}}' jupyterhub") == containers
    assert gpu_state(deployment, target, hub) == before
    # The hub that ran on reaches the engine that came back: it starts and stops a server.
    hub.ensure_user("crash-after-engine")
    hub.start_server("crash-after-engine", options={"gpu": "cpu"})
    hub.stop_server("crash-after-engine")


FLEET = [f"fleet{i:02d}" for i in range(20)]


@pytest.fixture(scope="module")
def fleet(deployment):
    """Target 1 with twenty running servers, as a class leaves them: the first two hold the host's two
    stand-in GPUs, the others are CPU-only; each has a file of its own."""
    target = deployment.targets[1]
    hub = deployment.hub(target)
    started = storm(hub, FLEET[:2], options={"gpu": "gpu"})
    started.spawn_seconds.update(storm(hub, FLEET[2:], options={"gpu": "cpu"}).spawn_seconds)
    try:
        assert sorted(started.spawn_seconds) == FLEET
        for user in FLEET:
            hub.write_file(user, "mine.txt", f"{user}'s work")
        yield deployment, target, hub
    finally:
        stop_all(hub, FLEET)


def test_hub_killed_with_twenty_servers_running_keeps_every_server_and_gpu(fleet):
    deployment, target, hub = fleet
    before = gpu_state(deployment, target, hub)
    assert sorted(gpu for gpus in before.values() for gpu in gpus) == sorted(uuid for _, uuid, _, _ in FAKE_GPUS)
    running = ("docker ps -q --filter label=gpudockerspawner.owner | "
               "xargs docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}' | sort")
    containers = deployment.output(target, running)
    assert len(containers.splitlines()) == len(FLEET)
    pid = hub_pid(deployment, target)
    deployment.run(target, f"kill -9 {pid}")
    killed = time.monotonic()
    wait_for_new_hub_process(deployment, target, pid)
    hub.wait_until_answering(timeout=killed + BACK_WITHIN - time.monotonic())
    for user in FLEET:
        while not (hub.user(user)["servers"].get("") or {}).get("ready"):
            assert time.monotonic() < killed + BACK_WITHIN, \
                f"{user}'s server is not ready {BACK_WITHIN}s after the kill"
            time.sleep(1)
        assert hub.read_file(user, "mine.txt") == f"{user}'s work"
    # The same containers, never restarted, holding the same GPUs; and no held GPU is handed out again.
    assert deployment.output(target, running) == containers
    assert gpu_state(deployment, target, hub) == before
    hub.ensure_user("fleet-newcomer")
    response = hub.api("POST", "/users/fleet-newcomer/server", json={"gpu": "gpu"})
    refusal = response.text
    if response.status_code < 400:
        with hub.session.get(f"{hub.url}/hub/api/users/fleet-newcomer/server/progress", stream=True, timeout=60,
                             verify=hub.ca_file) as events:
            refusal = "".join(line for line in events.iter_lines(decode_unicode=True))
    assert f"All {len(FAKE_GPUS)} GPUs are in use" in refusal, refusal
    assert gpu_state(deployment, target, hub) == before
