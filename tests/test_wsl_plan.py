"""What the deploy arranges on WSL2 hosts so that the hub outlives the last terminal and a Windows restart,
planned over WSL facts the test bed cannot boot (systemd or not, interop or not, elevated or not, Docker
Desktop, files that already hold other settings), comparing exact commands; a converged host yields none."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.server import TmpDir

from jupyterhub_gpu.facts import HostProfile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target
from roles.wsl import BOOT_SCRIPT, FILES, WindowsScheduledTask, ensure_uptime, ini
from tests.plan import plan

SYSTEM32 = "/mnt/c/Windows/System32"
TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "local.md"
WSL = dict(os_id="ubuntu", os_version="24.04", os_codename="noble", arch="x86_64", hostname="desktop", wsl=True,
           pid1="init", wsl_distribution="Ubuntu-24.04", windows_system32=SYSTEM32, windows_user="DESKTOP\\ann",
           windows_profile="/mnt/c/Users/ann", windows_elevated=True)
CREATE = (f"{SYSTEM32}/schtasks.exe /Create /F /TN 'jupyterhub-gpu\\Ubuntu-24.04' /SC ONSTART /RU 'DESKTOP\\ann' /NP "
          "/RL HIGHEST /TR 'C:\\Windows\\System32\\wsl.exe -d Ubuntu-24.04 -u root -e sleep infinity'")
ELEVATED_PROMPT = ('schtasks /Create /F /TN "jupyterhub-gpu\\Ubuntu-24.04" /SC ONSTART /RU "DESKTOP\\ann" /NP /RL '
                   'HIGHEST /TR "C:\\Windows\\System32\\wsl.exe -d Ubuntu-24.04 -u root -e sleep infinity"')
THE_TASK = {"command": "C:\\Windows\\System32\\wsl.exe", "arguments": "-d Ubuntu-24.04 -u root -e sleep infinity",
            "at_boot": True, "logon_type": "S4U"}
THEIRS = "# mine\n[user]\ndefault = ann\n\n[boot]\ncommand = service ssh start\n"
MERGED = f"# mine\n[user]\ndefault = ann\n\n[boot]\ncommand = service ssh start; {BOOT_SCRIPT}\n"


def target(**overrides) -> Target:
    settings = {key: overrides.pop(key) for key in list(overrides) if key in HubSettings.model_fields}
    return Target(HubSettings(**settings), HostProfile(**{**WSL, **overrides}))


def host_files(**files: str | None) -> dict:
    """Facts of a host whose files hold ``files`` ({path: text}); every other file is missing."""
    files = {path.replace("__", "/"): text for path, text in files.items()}

    def text(path):
        return files.get(path)

    return {
        FileContents: lambda path: text(path).splitlines() if text(path) is not None else None,
        File: lambda path: {"size": len(text(path)), "mode": 755 if path == BOOT_SCRIPT else 644, "user": "root",
                            "group": "root"}
        if text(path) is not None else None,
        Sha1File: lambda path: hashlib.sha1(text(path).encode()).hexdigest() if text(path) is not None else None,
        Directory: lambda path: {"mode": 755, "user": "root", "group": "root"},
        TmpDir: "/tmp",
    }


def planned(monkeypatch, host: Target, task=None, **files):
    said = {}

    def run(t):
        said["lines"] = ensure_uptime(t).said

    operations = plan(monkeypatch,
                      {**host_files(**files), WindowsScheduledTask: lambda schtasks, task_=None, **kw: task},
                      run, host)
    return {name: commands for name, commands in operations}, said["lines"]


BOOT = (FILES / "jupyterhub-gpu-boot.sh").read_text()


def test_without_systemd_the_boot_command_is_merged_into_wsl_conf_keeping_what_it_holds():
    assert ini.with_value(THEIRS, "boot", "command", lambda old: f"{old}; {BOOT_SCRIPT}") == MERGED
    quoted = '[boot]\ncommand = "service cron start"\n'
    ours = ini.with_value(quoted, "boot", "command", lambda old: ini.quoted_like(old, f"{ini.unquoted(old)}; x"))
    assert ours == '[boot]\ncommand = "service cron start; x"\n'


def test_fresh_wsl_host_without_systemd_gets_a_boot_command_and_a_windows_task(monkeypatch):
    operations, said = planned(monkeypatch, target(), **{"__etc__wsl.conf": THEIRS})
    assert [name for name, commands in operations.items() if commands] == [
        "WSL2 uptime | Start-up script for the distribution",
        "WSL2 uptime | /etc/wsl.conf starts the Docker engine and cron at boot",
        "WSL2 uptime | Windows task jupyterhub-gpu\\Ubuntu-24.04 keeps Ubuntu-24.04 running",
    ]
    assert operations["WSL2 uptime | Windows task jupyterhub-gpu\\Ubuntu-24.04 keeps Ubuntu-24.04 running"] == [CREATE]
    assert said == [
        "WSL2 without systemd: /etc/wsl.conf's [boot] command starts the Docker engine and cron when the distribution "
        "starts (from its next start: `wsl --terminate <distribution>`)",
        "WSL2: the Windows task jupyterhub-gpu\\Ubuntu-24.04 starts Ubuntu-24.04 with Windows and keeps it running",
    ]


def test_converged_wsl_host_yields_no_command(monkeypatch):
    operations, said = planned(monkeypatch, target(), task=THE_TASK,
                               **{"__etc__wsl.conf": MERGED, "__usr__local__sbin__jupyterhub-gpu-boot": BOOT})
    assert all(commands == [] for commands in operations.values()), operations
    assert said[0].endswith("when the distribution starts")


def test_a_task_that_differs_is_created_again(monkeypatch):
    other = dict(THE_TASK, arguments="-d Ubuntu-22.04 -u root -e sleep infinity")
    operations, _ = planned(monkeypatch, target(), task=other,
                            **{"__etc__wsl.conf": MERGED, "__usr__local__sbin__jupyterhub-gpu-boot": BOOT})
    assert [c for commands in operations.values() for c in commands] == [CREATE]


def test_with_systemd_wsl_conf_is_left_alone(monkeypatch):
    operations, said = planned(monkeypatch, target(pid1="systemd"), task=THE_TASK, **{"__etc__wsl.conf": THEIRS})
    assert all(commands == [] for commands in operations.values())
    assert said[0] == "WSL2 with systemd: the Docker engine is enabled and starts with the distribution"


@pytest.mark.parametrize(("profile", "reason"), [
    ({"windows_system32": "", "windows_user": "", "windows_profile": ""}, "interop is off"),
    ({"windows_elevated": False}, "needs an elevated session"),
])
def test_without_interop_or_elevation_the_deploy_says_what_to_run_in_windows_and_does_not_fail(monkeypatch, profile,
                                                                                              reason):
    operations, said = planned(monkeypatch, target(**profile),
                               **{"__etc__wsl.conf": MERGED, "__usr__local__sbin__jupyterhub-gpu-boot": BOOT})
    assert all(commands == [] for commands in operations.values())
    assert reason in said[-1]
    expected = ELEVATED_PROMPT if profile.get("windows_user") != "" else ELEVATED_PROMPT.replace("DESKTOP\\ann",
                                                                                                 "<DOMAIN>\\<user>")
    assert said[-1].endswith(expected)
    if reason == "needs an elevated session":
        # The WSL2 tutorial shows the reader this line as the deploy prints it from an ordinary terminal.
        assert f"--> @local: {said[-1]}\n" in TUTORIAL.read_text()


def test_keeping_it_running_can_be_turned_off(monkeypatch):
    operations, said = planned(monkeypatch, target(wsl_keep_running=False),
                               **{"__etc__wsl.conf": MERGED, "__usr__local__sbin__jupyterhub-gpu-boot": BOOT})
    assert all(commands == [] for commands in operations.values())
    assert len(said) == 1


def test_docker_desktops_engine_gets_advice_and_nothing_else(monkeypatch):
    operations, said = planned(monkeypatch, target(docker_server="28.0.1", docker_os="Docker Desktop"))
    assert operations == {}
    assert "as long as Docker Desktop does" in said[0] and "Start Docker Desktop when you sign in" in said[0]


def test_vm_idle_timeout_is_merged_into_the_users_wslconfig(monkeypatch):
    theirs = "[wsl2]\nmemory = 16GB\n"
    operations, said = planned(monkeypatch, target(wsl_vm_idle_timeout=3_600_000), task=THE_TASK,
                               **{"__etc__wsl.conf": MERGED, "__usr__local__sbin__jupyterhub-gpu-boot": BOOT,
                                  "__mnt__c__Users__ann__.wslconfig": theirs})
    assert [name for name, commands in operations.items() if commands] == [
        "WSL2 uptime | .wslconfig lets the WSL VM idle 3600000 ms"]
    assert ini.with_value(theirs, "wsl2", "vmIdleTimeout", lambda old: "3600000") == (
        "[wsl2]\nmemory = 16GB\nvmIdleTimeout = 3600000\n")
    assert said[-1] == ("WSL2: /mnt/c/Users/ann/.wslconfig sets vmIdleTimeout=3600000 (from WSL's next start: "
                        "`wsl --shutdown`)")


def test_hosts_that_are_not_wsl_get_nothing(monkeypatch):
    operations, said = planned(monkeypatch, target(wsl=False))
    assert operations == {} and said == []


def test_on_wsl2_the_certificate_names_the_loopback_address_only_unless_told_otherwise():
    # WSL gives the distribution a new address at each start: a certificate naming it would be made again, and the
    # trust a person gave the local CA's first one would not hold for the browser's address.
    assert target(ipv4=("172.28.5.9",)).addresses == ("127.0.0.1",)
    assert target(ipv4=("172.28.5.9",), hub_addresses=["10.0.0.7"]).addresses == ("10.0.0.7",)
    server = Target(HubSettings(), HostProfile(**{**WSL, "wsl": False, "ipv4": ("192.168.1.20",)}))
    assert server.addresses == ("192.168.1.20", "127.0.0.1")
