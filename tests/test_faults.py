"""What goes wrong on a real host, made to happen on a fresh GPU host of this module's own: the deploy is
killed at six points of its first run, the host reboots, its disk fills up during an image's shipping and
during a backup. Each fault is made from outside, the way it happens (SIGKILL to the whole deploy, the
host's power cycled, a filesystem that really runs out of space), and each ends with the hub checked over
verified HTTPS. The host runs the previous JupyterHub (5.5) through all of it, and is then upgraded in place
(the last test)."""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from roles.images import jupyterhub_pin
from roles.images.recipes import TEMPLATES
from testbed import smoke
from testbed.deploy import operation_order, run_deploy
from testbed.hub import HubClient
from testbed.targets import remove_targets, write_inventory_file
from tests.test_crash_recovery import gpu_state, power_cycled, servers_back_with_notes, servers_with_notes

pytestmark = pytest.mark.slow

# Kill points per run, chosen anew with each run's seed, so that every run of the suite tries others: six keep the
# whole suite within its half hour (ten did until the JupyterLab and sharing scenarios joined it).
KILLS = 6
INSTALL_DIR = smoke.INSTALL_DIR
PREVIOUS = "5.5.4"
CURRENT = jupyterhub_pin().removeprefix("jupyterhub==")


def previous_pins() -> list[str]:
    """The hub's pins with the previous JupyterHub."""
    pins = [line for line in (TEMPLATES / "hub-requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    return [re.sub(r"^jupyterhub==\S+$", f"jupyterhub=={PREVIOUS}", pin) for pin in pins]


@pytest.fixture(scope="module")
def faulty(engine, nvidia_repository):
    """One fresh GPU host, not deployed yet: the first test deploys it (with the previous JupyterHub, which the
    last test upgrades), killed six times on the way."""
    # Its certificate names the hub, not the host's address, which a power cycle may change (side by side with
    # other scenarios, another target may take the old one): re-deploys after it change nothing.
    deployment = smoke.start(1, prefix="faults", repository=nvidia_repository,
                             data={"hub_names": ["faults.lab.test"], "hub_addresses": ["127.0.0.1"],
                                   "hub_packages": previous_pins()})
    try:
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


def kill_at(plan: list[str], point: int, delay: float):
    """``run_deploy``'s ``kill_when``: SIGKILL ``delay`` seconds after the first operation at or after
    ``plan[point]`` starts. Operations the plan has but a re-run no longer needs (the engine answers, so
    its installation is not planned again) are passed over by their place in the plan."""
    cursor = 0

    def kill_when(name: str) -> float | None:
        nonlocal cursor
        try:
            index = plan.index(name, cursor)
        except ValueError:
            return None
        cursor = index + 1
        return delay if index >= point else None

    return kill_when


def test_a_first_deploy_killed_at_six_points_picks_up_each_time_and_converges(faulty):
    """The first deploy of a fresh host is killed six times, each time at a later point chosen with a seed;
    each re-run must get past where the previous one died (it is killed only on reaching its own point, and
    fails the test if it stops with an error first). The run after the last kill converges to a working hub,
    and the one after that changes nothing."""
    seed = int(os.environ.get("JUPYTERHUB_GPU_FAULT_SEED") or random.randrange(1_000_000))
    print(f"kill points chosen with seed {seed}; to replay: JUPYTERHUB_GPU_FAULT_SEED={seed} "
          f"bin/test tests/test_faults.py")
    plan = operation_order(faulty.targets_file)
    chooser = random.Random(seed)
    points = sorted(chooser.sample(range(len(plan)), KILLS))
    delays = [round(chooser.uniform(0, 2), 1) for _ in points]
    for number, (point, delay) in enumerate(zip(points, delays), start=1):
        run = faulty.deploy(kill_when=kill_at(plan, point, delay))
        where = f"kill {number} (seed {seed}): at {plan[point]!r} + {delay} s"
        if run.killed_at is None:
            # Nothing at or after the point was left to do; then the run must have finished cleanly.
            assert run.returncode == 0, f"{where}: the run failed before reaching its point:\n{run.log[-4000:]}"
            print(f"{where}: finished before it ({run.seconds:.0f} s)")
        else:
            assert run.returncode in (-9, 0), f"{where}: the run failed:\n{run.log[-4000:]}"
            print(f"{where}: killed in {run.killed_at!r} after {run.seconds:.0f} s")
    converged = faulty.deploy()
    assert converged.returncode == 0, converged.log[-5000:]
    (target,) = faulty.targets
    smoke.check_hub(faulty, target)
    again = faulty.deploy()
    assert again.returncode == 0 and again.totals["success"] == 0, again.changed_operations()


def test_after_a_reboot_the_hub_and_every_server_come_back_without_a_deploy(faulty):
    """The host's power is cycled (every process killed, /run emptied): SysV init's start scripts start the
    engine, whose restart policies bring back the hub, the proxy and each user's server with its GPU."""
    (target,) = faulty.targets
    before = servers_with_notes(faulty, target, faulty.hub(target), "reboot", "before the reboot")
    hub, started = power_cycled(faulty, target)
    write_inventory_file(faulty.targets, faulty.targets_file)  # its address now, for the tests after this one
    servers_back_with_notes(hub, "reboot", "before the reboot", started)
    assert gpu_state(faulty, target, hub) == before
    print(f"reboot: every server ready {time.monotonic() - started:.0f} s after the host started")
    # The boot script applied the firewall (before it started the engine, and as the engine names the network).
    faulty.run(target, "/usr/local/sbin/jupyterhub-gpu-firewall --check")
    for user in ("reboot-gpu", "reboot-cpu"):
        hub.stop_server(user)


def hub_container(deployment, target) -> str:
    return deployment.output(target, "docker inspect --format '{{.Id}} {{.State.StartedAt}}' jupyterhub")


def test_a_full_disk_while_an_image_is_shipped_stops_the_deploy_and_leaves_the_hub_as_it_was(faulty):
    """A new image profile needs an image the host lacks; the host's /var/tmp, where the image arrives, is a
    filesystem of 32 MiB. The deploy stops there, says that the disk is full and where, removes what it
    copied, and the hub runs on untouched: reverting the setting then changes nothing at all."""
    (target,) = faulty.targets
    hub = faulty.hub(target)
    before = hub_container(faulty, target)
    faulty.run(target, "mount -t tmpfs -o size=32m tmpfs /var/tmp")
    try:
        profiles = list(target.data["image_profiles"])
        full = faulty.redeploy_with(image_profiles=[*profiles, {"name": "With six", "packages": ["six==1.17.0"]}])
        assert full.returncode != 0
        assert "the disk is full (" in full.log and "MiB free at /var/tmp" in full.log, full.log[-4000:]
        assert "Traceback" not in full.log, full.log[-4000:]
        assert faulty.output(target, "ls -A /var/tmp") == ""
        assert hub_container(faulty, target) == before
        assert hub.version()
    finally:
        faulty.run(target, "umount /var/tmp")
    reverted = faulty.redeploy_with(image_profiles=profiles)
    assert reverted.returncode == 0 and reverted.totals["success"] == 0, reverted.changed_operations()


def test_a_full_disk_during_a_backup_stops_it_with_a_message_and_the_hub_runs_on(faulty, tmp_path):
    (target,) = faulty.targets
    hub = faulty.hub(target)
    hub.ensure_user("backed-up")
    hub.start_server("backed-up", options={"gpu": "cpu"})
    hub.write_file("backed-up", "data.txt", "x" * 100_000)
    before = hub_container(faulty, target)
    backups = f"{INSTALL_DIR}/backups"
    faulty.run(target, f"mkdir -p {backups} && mount -t tmpfs -o size=64k,mode=700 tmpfs {backups}")
    try:
        run = run_deploy(faulty.targets_file, deploy="deploy/backup.py", env={"JUPYTERHUB_GPU_BACKUPS": str(tmp_path)})
        assert run.returncode != 0
        assert "no space left on this host's disk for the backup" in run.log, run.log[-4000:]
        assert faulty.output(target, f"ls -A {backups}") == ""
        assert list(tmp_path.iterdir()) == []
        assert hub_container(faulty, target) == before
        assert hub.read_file("backed-up", "data.txt") == "x" * 100_000
    finally:
        faulty.run(target, f"umount {backups}")
        hub.stop_server("backed-up")


def test_a_new_jupyterhub_upgrades_the_hub_in_place_and_keeps_users_tokens_and_servers(faulty):
    """Last: the hub these faults hit runs the previous JupyterHub (5.5); deployed again with this checkout's
    pins, its database is copied and upgraded, users, tokens and running servers stay, and the images it no
    longer uses go once a rollback's worth is kept."""
    deployment, (target,) = faulty, faulty.targets
    hub = deployment.hub(target)
    assert hub.version() == PREVIOUS
    hub.ensure_user("ursula")
    token = hub.api("POST", "/users/ursula/tokens", json={"note": "ursula's script"}).json()["token"]
    hub.start_server("ursula")
    hub.write_file("ursula", "results.txt", "before the upgrade")
    container = deployment.output(target, "docker inspect --format '{{.Id}}' jupyter-ursula")
    old_images = deployment.output(target, "docker inspect --format '{{.Config.Image}}' jupyterhub jupyter-ursula")

    upgraded = deployment.redeploy_with(hub_packages=[])
    assert upgraded.returncode == 0, upgraded.log[-5000:]
    assert hub.wait_until_answering() == CURRENT
    # The server ran through the upgrade: the same container, its file, and the user's token still answers.
    assert deployment.output(target, "docker inspect --format '{{.Id}}' jupyter-ursula") == container
    assert hub.servers("ursula")[""]["ready"]
    assert hub.read_file("ursula", "results.txt") == "before the upgrade"
    me = HubClient(hub.url, hub.ca_file, token=token, server_hostname=hub.server_hostname).api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == "ursula"
    # The database as it was is kept beside it, and the hub said what it did.
    copies = deployment.output(target, "docker exec jupyterhub ls /srv/jupyterhub")
    assert re.search(rf"jupyterhub\.sqlite\.{re.escape(PREVIOUS)}-to-{re.escape(CURRENT)}\.\d{{8}}T\d{{6}}Z",
                     copies), copies
    log = deployment.output(target, "docker logs jupyterhub 2>&1")
    assert f"JupyterHub {PREVIOUS} -> {CURRENT}: the database was copied" in log
    again = deployment.deploy()
    assert again.returncode == 0 and not again.totals.get("success"), again.changed_operations()

    # The previous hub image is kept for a rollback; with none to keep, it goes. The single-user image that
    # Ursula's running server was made from stays while it runs.
    old_hub, old_singleuser = old_images.split()
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_hub in images and old_singleuser in images
    pruned = deployment.redeploy_with(keep_previous_images=0)
    assert pruned.returncode == 0, pruned.log[-5000:]
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_hub not in images and old_singleuser in images
    hub.stop_server("ursula")
    deployment.deploy()
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_singleuser not in images
