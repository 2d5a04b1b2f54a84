"""A WSL2 host without systemd (the test bed's stand-in: WSL's marks, its init, and Windows' programs at their
paths, see testbed/wsl.py), deployed twice without a second change: WSL's [boot] command starts the engine with the
distribution and a Windows task starts the distribution with Windows; after Windows restarts (the target is stopped
and started: WSL's init runs the [boot] command), the hub and every user server come back by themselves. A WSL2
host with `[boot] systemd=true`, as Ubuntu's distribution ships, is the one the tutorial is walked on
(tests/test_tutorial.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import smoke, wsl
from testbed.targets import SYSV
from tests.test_crash_recovery import gpu_state, power_cycled, servers_back_with_notes, servers_with_notes

pytestmark = pytest.mark.slow

WSL_HOWTO = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "wsl.md"


@pytest.fixture(scope="module")
def wsl_deployment(engine, nvidia_repository):
    with smoke.deployed(smoke.start(1, prefix="wsl", repository=nvidia_repository, wsl_host=True,
                                    kinds=[SYSV])) as deployment:
        yield deployment


def test_second_deploy_changes_nothing(wsl_deployment):
    assert wsl_deployment.runs[1].totals["success"] == 0, wsl_deployment.runs[1].changed_operations()


def test_wsl_conf_starts_the_engine_at_boot_and_keeps_what_it_held(wsl_deployment):
    (target,) = wsl_deployment.targets
    text = wsl_deployment.read(target, "/etc/wsl.conf").decode()
    assert text == wsl.WSL_CONF.replace(
        "command = echo booted >> /var/log/testbed-boot.log",
        "command = echo booted >> /var/log/testbed-boot.log; /usr/local/sbin/jupyterhub-gpu-boot")


def windows_task_created(read) -> list[str]:
    """The arguments of each schtasks.exe /Create the deploy ran on a WSL2 host (``read``: a file of the host)."""
    return [call["args"] for call in wsl.calls(read)
            if call["program"] == "schtasks.exe" and call["args"][:1] == ["/Create"]]


def as_typed(created: list[str]) -> str:
    """A schtasks call as the docs give it to type."""
    return "schtasks " + " ".join(f'"{a}"' if " " in a or "\\" in a else a for a in created)


def test_the_windows_task_is_created_once_and_is_the_one_the_docs_give(wsl_deployment):
    (target,) = wsl_deployment.targets
    created = windows_task_created(lambda path: wsl_deployment.read(target, path))
    assert len(created) == 1, created
    assert as_typed(created[0]) in WSL_HOWTO.read_text(), as_typed(created[0])


def test_closing_lines_say_what_was_arranged(wsl_deployment):
    (target,) = wsl_deployment.targets
    log = wsl_deployment.runs[0].log
    assert (f"--> {target.address}: WSL2 without systemd: /etc/wsl.conf's [boot] command starts the Docker "
            "engine and cron when the distribution starts") in log
    assert (f"--> {target.address}: WSL2: the Windows task jupyterhub-gpu\\{wsl.DISTRIBUTION} starts "
            f"{wsl.DISTRIBUTION} with Windows and keeps it running") in log
    assert "WSL2 host with 2 GPUs: WSL2 shows every container every GPU" in log


def test_after_windows_restarts_the_hub_and_every_server_come_back_by_themselves(wsl_deployment):
    (target,) = wsl_deployment.targets
    held = servers_with_notes(wsl_deployment, target, wsl_deployment.hub(target), "wsl", "before the restart")
    # Windows restarts: the distribution goes down with everything in it.
    hub, started = power_cycled(wsl_deployment, target, stop_timeout=5)
    servers_back_with_notes(hub, "wsl", "before the restart", started)
    assert gpu_state(wsl_deployment, target, hub) == held
    # WSL ran both boot commands: the distribution's own, and the deploy's, which started the engine.
    assert wsl_deployment.output(target, "cat /var/log/testbed-boot.log").count("booted") == 2
    wsl_deployment.run(target, "test -e /var/log/jupyterhub-gpu-boot.log")
