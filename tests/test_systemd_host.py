"""A host as most people have one: Debian 13 booted by systemd, Docker 26, reached over SSH as a user with sudo
(the main deployment's target 1). The deploy logs in as that user and works as root; the engine and the firewall
are systemd units that start at boot; live-restore is applied by a reload; a power cut and a boot bring back the
engine, the hub, the proxy and every user server with its GPU, with no deploy.

The last test power-cycles the target, which may come back at another address: this module runs after the other
modules that use the main deployment (pytest runs test files in name order), and its clients name the host as
its certificate does."""

from __future__ import annotations

import time

import pytest

from testbed import smoke
from tests.test_crash_recovery import gpu_state, power_cycled, servers_back_with_notes, servers_with_notes

pytestmark = pytest.mark.slow

INSTALL_DIR = smoke.INSTALL_DIR


@pytest.fixture(scope="module")
def systemd_host(deployment):
    (target,) = [target for target in deployment.targets if target.kind.init == "systemd"]
    return deployment, target


def test_the_deploy_logs_in_as_the_sudo_user_and_everything_it_makes_is_roots(systemd_host):
    deployment, target = systemd_host
    assert (target.data["ssh_user"], target.data["_sudo"]) == ("ops", True)
    logins = deployment.output(target, "journalctl --no-pager -o cat -u ssh.service | grep 'Accepted publickey for'")
    assert {line.split()[3] for line in logins.splitlines()} == {"ops"}, logins
    # Nothing of the deploy's belongs to the SSH user, and the images went through a private staging directory
    # that is gone.
    assert deployment.output(target, f"find {INSTALL_DIR} /etc/docker /usr/local/sbin -user ops") == ""
    assert deployment.output(target, "ls -A /var/tmp | grep jupyterhub-gpu-image || true") == ""


def test_engine_and_firewall_are_units_started_at_boot_and_live_restore_came_by_reload(systemd_host):
    deployment, target = systemd_host
    units = "docker.service jupyterhub-gpu-firewall.service"
    assert deployment.output(target, f"systemctl is-enabled {units}").split() == ["enabled", "enabled"]
    assert deployment.output(target, f"systemctl is-active {units}").split() == ["active", "active"]
    assert deployment.output(target, "docker version --format '{{.Server.Version}}'").startswith("26.")
    assert deployment.output(target, "docker info --format '{{.LiveRestoreEnabled}}'") == "true"
    first = deployment.runs[0].changed_operations()
    assert any(name.startswith("Docker engine | Docker engine reloads daemon.json on") and target.address in name
               for name in first), first


def test_a_power_cut_and_a_boot_bring_back_the_hub_and_every_server_with_its_gpu(systemd_host):
    deployment, target = systemd_host
    hub = deployment.hub(target)
    held = servers_with_notes(deployment, target, hub, "boot", "before the power cut")
    engine_before = deployment.output(target, "systemctl show --property=MainPID --value docker.service")

    hub, started = power_cycled(deployment, target)
    hub.wait_until_answering(timeout=180)
    answering = time.monotonic() - started
    servers_back_with_notes(hub, "boot", "before the power cut", started)
    print(f"power cycle of a systemd host (Debian 13, Docker 26) to the hub answering: {answering:.1f} s; "
          f"to both servers ready: {time.monotonic() - started:.1f} s")

    # systemd started the engine (a new process) and, before it, the firewall, which is in force again: no user
    # container that the engine restarted ran a moment without it.
    assert deployment.output(target, "systemctl show --property=MainPID --value docker.service") != engine_before
    assert deployment.output(target, "systemctl is-active jupyterhub-gpu-firewall.service") == "active"
    firewall_in_force = int(deployment.output(target, "systemctl show --property=ActiveEnterTimestampMonotonic "
                                    "--value jupyterhub-gpu-firewall.service"))
    engine_started = int(deployment.output(target, "systemctl show --property=ExecMainStartTimestampMonotonic "
                                 "--value docker.service"))
    assert 0 < firewall_in_force <= engine_started
    deployment.run(target, "/usr/local/sbin/jupyterhub-gpu-firewall --check")
    assert gpu_state(deployment, target, hub) == held
    for user in ("boot-gpu", "boot-cpu"):
        hub.stop_server(user)
