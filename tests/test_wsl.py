"""WSL2 hosts (the test bed's stand-in: WSL's marks, its init, and Windows' programs at their paths, see
testbed/wsl.py), one without systemd and one with `[boot] systemd=true`, deployed together: the engine starts
with the distribution (by WSL's [boot] command, or as a systemd unit) and a Windows task starts the distribution
with Windows, twice without a second change; and after Windows restarts (each target is stopped and started: WSL's
init runs the [boot] command, or systemd boots), the hub and every user server come back by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import smoke, wsl
from testbed.targets import SYSV, HostKind
from tests.test_crash_recovery import gpu_state, power_cycled, servers_back_with_notes, servers_with_notes

pytestmark = pytest.mark.slow

WSL_HOWTO = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "wsl.md"


@pytest.fixture(scope="module")
def wsl_deployment(engine, nvidia_repository):
    kinds = [SYSV, HostKind("bookworm", "systemd")]
    with smoke.deployed(smoke.start(2, prefix="wsl", repository=nvidia_repository, wsl_host=True,
                                    kinds=kinds)) as deployment:
        yield deployment


def test_second_deploy_changes_nothing(wsl_deployment):
    assert wsl_deployment.runs[1].totals["success"] == 0, wsl_deployment.runs[1].changed_operations()


def test_wsl_conf_starts_the_engine_at_boot_and_keeps_what_it_held(wsl_deployment):
    without_systemd, with_systemd = wsl_deployment.targets
    text = wsl_deployment.read(without_systemd, "/etc/wsl.conf").decode()
    assert text == wsl.WSL_CONF.replace(
        "command = echo booted >> /var/log/testbed-boot.log",
        "command = echo booted >> /var/log/testbed-boot.log; /usr/local/sbin/jupyterhub-gpu-boot")
    # With systemd, systemd starts the engine: wsl.conf is left as the distribution shipped it.
    assert wsl_deployment.read(with_systemd, "/etc/wsl.conf").decode() == wsl.WSL_SYSTEMD_CONF
    assert wsl_deployment.output(with_systemd, "systemctl is-enabled docker.service") == "enabled"


def test_the_windows_task_is_created_once_and_is_the_one_the_docs_give(wsl_deployment):
    for target in wsl_deployment.targets:
        created = [call["args"] for call in wsl.calls(lambda path: wsl_deployment.read(target, path))
                   if call["program"] == "schtasks.exe" and call["args"][:1] == ["/Create"]]
        assert len(created) == 1, created
        typed = "schtasks " + " ".join(f'"{a}"' if " " in a or "\\" in a else a for a in created[0])
        assert typed in WSL_HOWTO.read_text(), typed


def test_closing_lines_say_what_was_arranged(wsl_deployment):
    without_systemd, with_systemd = wsl_deployment.targets
    log = wsl_deployment.runs[0].log
    assert (f"--> {without_systemd.address}: WSL2 without systemd: /etc/wsl.conf's [boot] command starts the Docker "
            "engine and cron when the distribution starts") in log
    assert (f"--> {with_systemd.address}: WSL2 with systemd: the Docker engine is enabled and starts with the "
            "distribution") in log
    for target in wsl_deployment.targets:
        assert (f"--> {target.address}: WSL2: the Windows task jupyterhub-gpu\\{wsl.DISTRIBUTION} starts "
                f"{wsl.DISTRIBUTION} with Windows and keeps it running") in log
    assert "WSL2 host with 2 GPUs: WSL2 shows every container every GPU" in log


def test_after_windows_restarts_the_hub_and_every_server_come_back_by_themselves(wsl_deployment):
    without_systemd, with_systemd = wsl_deployment.targets
    held = {target.name: servers_with_notes(wsl_deployment, target, wsl_deployment.hub(target), "wsl",
                                            "before the restart")
            for target in wsl_deployment.targets}
    # Windows restarts: each distribution goes down with everything in it.
    for target in wsl_deployment.targets:
        hub, started = power_cycled(wsl_deployment, target, stop_timeout=5)
        servers_back_with_notes(hub, "wsl", "before the restart", started)
        assert gpu_state(wsl_deployment, target, hub) == held[target.name]
    # WSL ran both boot commands: the distribution's own, and the deploy's, which started the engine.
    assert wsl_deployment.output(without_systemd, "cat /var/log/testbed-boot.log").count("booted") == 2
    wsl_deployment.run(without_systemd, "test -e /var/log/jupyterhub-gpu-boot.log")
    # With systemd, systemd started it.
    assert wsl_deployment.output(with_systemd, "systemctl is-active docker.service") == "active"
