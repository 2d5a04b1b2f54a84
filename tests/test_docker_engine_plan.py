"""What the Docker engine role would run on hosts the test bed cannot boot: Ubuntu 22.04 and 24.04,
WSL2 with and without systemd, Docker Desktop, Docker's own repository; and that a converged host
yields no command at all."""

import hashlib
import json

from pyinfra.facts.apt import AptSources
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, FileContents, FindInFile, Link, Sha1File
from pyinfra.facts.server import TmpDir, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from jupyterhub_gpu.apt import PackageManagerState
from jupyterhub_gpu.facts import DockerServerVersion, HostProfile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target
from roles.docker_engine import BOOT_SERVICE, FILES, START_SCRIPT, ensure_engine, merged_daemon_json
from tests.plan import commands_of, plan

UBUNTU_24 = dict(os_id="ubuntu", os_version="24.04", os_codename="noble", arch="x86_64", hostname="gpu1")
UBUNTU_22 = dict(UBUNTU_24, os_version="22.04", os_codename="jammy")
DEBIAN_12 = dict(os_id="debian", os_version="12", os_codename="bookworm", arch="x86_64", hostname="gpu2")


def fresh_facts(overrides=None):
    facts = {
        DockerServerVersion: None,
        DebPackages: {},
        AptSources: [],
        FindInFile: lambda **kwargs: [],
        File: None,
        FileContents: None,
        Link: None,
        Directory: None,
        TmpDir: "/tmp",
        Which: lambda command: f"/usr/bin/{command}",
        SystemdStatus: {"docker.service": False},
        SystemdEnabled: {"docker.service": False},
        PackageManagerState: {"busy": [], "interrupted": False},
    }
    facts.update(overrides or {})
    return facts


def target(profile: dict, **settings) -> Target:
    return Target(HubSettings(**settings), HostProfile(**profile))


APT_INSTALL = ('DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::="--force-confdef" '
               '-o Dpkg::Options::="--force-confold" install')
APT_UPDATE = ["apt-get update", "touch /var/lib/apt/periodic/update-success-stamp"]
LIVE_RESTORE = ["mkdir -p /etc/docker", "upload /etc/docker/daemon.json", "chmod 644 /etc/docker/daemon.json"]
CONVERGED_DAEMON_JSON = ['{', '    "live-restore": true', '}']


def test_ubuntu_24_with_systemd_gets_docker_io_compose_v2_and_a_systemd_unit(monkeypatch):
    planned = plan(monkeypatch, fresh_facts(), ensure_engine, target(dict(UBUNTU_24, pid1="systemd")))
    assert [step for step in planned if step[1]] == [
        ("Docker engine | Update apt lists for docker.io, iptables", APT_UPDATE),
        ("Docker engine | Install docker.io, iptables (the Docker engine)", [f"{APT_INSTALL} docker.io iptables"]),
        ("Docker engine | Docker engine enabled and running",
         ["systemctl start docker.service", "systemctl enable docker.service"]),
        ("Docker engine | Docker engine keeps containers running while it is down (live-restore)", LIVE_RESTORE),
        ("Docker engine | Docker engine reloads daemon.json", ["systemctl reload docker"]),
        ("Docker engine | Install Docker Compose v2", [f"{APT_INSTALL} docker-compose-v2"]),
    ]


def test_wsl_without_systemd_starts_the_engine_with_the_start_script(monkeypatch):
    wsl = target(dict(UBUNTU_22, pid1="init", wsl=True))
    planned = plan(monkeypatch, fresh_facts(), ensure_engine, wsl)
    commands = commands_of(planned)
    assert not any(c.startswith("systemctl") or "/etc/rc2.d" in c for c in commands)  # WSL's [boot] starts it
    assert dict(planned)["Docker engine | Docker engine running"] == ["/usr/local/sbin/jupyterhub-gpu-start-docker 60"]
    script = (FILES / "start-docker-engine.sh").read_text()
    assert "/etc/init.d/docker start" in script and "setsid dockerd" in script


def test_debian_12_without_systemd_gets_docker_io_its_start_script_and_compose_v2_from_the_controller(monkeypatch):
    planned = plan(monkeypatch, fresh_facts(), ensure_engine, target(dict(DEBIAN_12, pid1="sshd")))
    plugin = "/usr/local/lib/docker/cli-plugins/docker-compose"
    assert [step for step in planned if step[1]] == [
        ("Docker engine | Update apt lists for docker.io, iptables", APT_UPDATE),
        ("Docker engine | Install docker.io, iptables (the Docker engine)", [f"{APT_INSTALL} docker.io iptables"]),
        ("Docker engine | Docker engine start script",
         [f"upload {START_SCRIPT}", f"chmod 755 {START_SCRIPT}"]),
        ("Docker engine | Docker engine init script",
         [f"upload /etc/init.d/{BOOT_SERVICE}", f"chmod 755 /etc/init.d/{BOOT_SERVICE}"]),
        ("Docker engine | Docker engine started at boot (runlevels 2-5)",
         [command for level in (2, 3, 4, 5) for command in
          (f"mkdir -p /etc/rc{level}.d", f"ln -s /etc/init.d/{BOOT_SERVICE} /etc/rc{level}.d/S90{BOOT_SERVICE}")]),
        ("Docker engine | Docker engine running", [f"{START_SCRIPT} 60"]),
        ("Docker engine | Docker engine keeps containers running while it is down (live-restore)", LIVE_RESTORE),
        ("Docker engine | Docker engine reloads daemon.json", ['kill -HUP "$(cat /var/run/docker.pid)"']),
        ("Docker engine | Docker CLI plugins directory",
         ["mkdir -p /usr/local/lib/docker/cli-plugins", "chmod 755 /usr/local/lib/docker/cli-plugins"]),
        ("Docker engine | Install the Docker Compose v2 plugin",
         ["mkdir -p /usr/local/lib/docker/cli-plugins", f"upload {plugin}", f"chmod 755 {plugin}"]),
    ]


def test_docker_desktop_engine_is_left_alone(monkeypatch):
    desktop = target(dict(UBUNTU_24, pid1="init", wsl=True, docker_cli=True, docker_server="28.4.0",
                          docker_os="Docker Desktop", compose="2.39.1"))
    assert plan(monkeypatch, fresh_facts({DockerServerVersion: "28.4.0"}), ensure_engine, desktop) == []


def test_converged_systemd_host_yields_no_command(monkeypatch):
    converged = target(dict(UBUNTU_24, pid1="systemd", docker_cli=True, docker_server="26.1.3", compose="2.27.1"))
    facts = fresh_facts({SystemdStatus: {"docker.service": True}, SystemdEnabled: {"docker.service": True},
                         FileContents: lambda path: CONVERGED_DAEMON_JSON})
    planned = plan(monkeypatch, facts, ensure_engine, converged)
    assert planned and commands_of(planned) == []


def test_converged_host_without_systemd_yields_no_command(monkeypatch):
    converged = target(dict(DEBIAN_12, pid1="sshd", docker_cli=True, docker_server="20.10.24", compose="2.40.3"))
    scripts = {START_SCRIPT: (FILES / "start-docker-engine.sh").read_bytes(),
               f"/etc/init.d/{BOOT_SERVICE}": (FILES / f"{BOOT_SERVICE}.init").read_bytes()}
    installed = {
        File: lambda path: {"mode": 755, "user": "root", "group": "root", "size": len(scripts[path])}
        if path in scripts else None,
        Sha1File: lambda path: hashlib.sha1(scripts[path]).hexdigest() if path in scripts else None,
        Link: lambda path: {"link_target": f"/etc/init.d/{BOOT_SERVICE}", "user": "root", "group": "root"}
        if path.endswith(f"S90{BOOT_SERVICE}") else None,
        Directory: lambda path: {"mode": 755, "user": "root", "group": "root"},
    }
    installed[FileContents] = lambda path: CONVERGED_DAEMON_JSON
    planned = plan(monkeypatch, fresh_facts({DockerServerVersion: "20.10.24", **installed}), ensure_engine, converged)
    assert planned and commands_of(planned) == []


def test_docker_ce_source_adds_dockers_repository_with_signed_by(monkeypatch):
    ce = target(dict(UBUNTU_24, pid1="systemd"), engine_source="docker-ce",
                engine_repo_url="https://mirror.example.com/docker/linux")
    commands = commands_of(plan(monkeypatch, fresh_facts(), ensure_engine, ce))
    repo_line = ("deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
                 "https://mirror.example.com/docker/linux/ubuntu noble stable")
    assert any(repo_line in c for c in commands), commands
    packages = "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
    assert any(packages in c for c in commands)


def test_an_apt_left_running_by_a_killed_deploy_is_waited_for_and_an_interrupted_dpkg_finished(monkeypatch):
    busy = fresh_facts({PackageManagerState: {"busy": ["apt-get"], "interrupted": True}})
    planned = dict(plan(monkeypatch, busy, ensure_engine, target(dict(DEBIAN_12, pid1="sshd"))))
    (script,) = planned["Docker engine | Package manager free for docker.io, iptables"]
    assert "apt-get|aptitude|dpkg|unattended-upgr" in script and "sleep 2" in script
    assert "dpkg --configure -a --force-confdef --force-confold" in script
    # Before apt runs, not after.
    names = list(planned)
    assert names.index("Docker engine | Package manager free for docker.io, iptables") < names.index(
        "Docker engine | Update apt lists for docker.io, iptables")


def test_the_package_manager_fact_reads_what_runs_and_whether_dpkg_was_interrupted():
    fact = PackageManagerState()
    assert fact.process(["busy= apt-get dpkg apt-get", "interrupted=1"]) == {"busy": ["apt-get", "dpkg"],
                                                                            "interrupted": True}
    assert fact.process(["busy="]) == {"busy": [], "interrupted": False}


def test_live_restore_joins_the_keys_daemon_json_has_and_the_engine_only_reloads(monkeypatch):
    existing = ['{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},',
                '"data-root": "/srv/docker"}']
    assert json.loads(merged_daemon_json(existing, {"live-restore": True})) == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}, "data-root": "/srv/docker",
        "live-restore": True}
    assert merged_daemon_json(CONVERGED_DAEMON_JSON, {"live-restore": True}) is None
    assert json.loads(merged_daemon_json(None, {"live-restore": False})) == {"live-restore": False}
    running = target(dict(DEBIAN_12, pid1="sshd", docker_cli=True, docker_server="20.10.24", compose="2.40.3"))
    planned = plan(monkeypatch, fresh_facts({DockerServerVersion: "20.10.24", FileContents: lambda path: existing}),
                   ensure_engine, running)
    assert dict(planned)["Docker engine | Docker engine reloads daemon.json"] == ['kill -HUP "$(cat '
                                                                                  '/var/run/docker.pid)"']
    assert not any("restart" in c or "stop" in c for c in commands_of(planned))


def test_daemon_json_that_is_not_json_stops_the_deploy_naming_the_file(monkeypatch):
    import pytest
    from pyinfra.api import OperationError
    running = target(dict(DEBIAN_12, pid1="sshd", docker_cli=True, docker_server="20.10.24", compose="2.40.3"))
    with pytest.raises(OperationError, match="/etc/docker/daemon.json is not valid JSON"):
        plan(monkeypatch, fresh_facts({DockerServerVersion: "20.10.24", FileContents: lambda path: ["{oops"]}),
             ensure_engine, running)


DEBIAN_13 = dict(os_id="debian", os_version="13", os_codename="trixie", arch="x86_64", hostname="gpu3")


def test_the_hub_gets_its_mac_address_the_way_its_engine_takes_it():
    """Docker 25+ (API 1.44) takes a MAC address per network endpoint (and Debian 13's Compose 2.26 drops a
    container-wide one there); older engines refuse that and take the container-wide key. Where no engine runs
    yet, the one the deploy installs decides: apt's candidate, else the release's docker.io."""
    from roles.network import HUB_MAC
    from roles.services import _network_endpoint

    per_endpoint = {"networks": {"jupyternet": {"mac_address": HUB_MAC}}}
    container_wide = {"mac_address": HUB_MAC, "networks": ["jupyternet"]}
    cases = [
        (dict(DEBIAN_12), {}, container_wide),
        (dict(DEBIAN_13), {}, per_endpoint),
        (dict(UBUNTU_24, docker_io_candidate="27.5.1-0ubuntu3~24.04.2"), {}, per_endpoint),
        (dict(UBUNTU_24, docker_io_candidate="24.0.7-0ubuntu4"), {}, container_wide),
        (dict(DEBIAN_12, docker_server="26.1.5+dfsg1"), {}, per_endpoint),
        (dict(DEBIAN_13, docker_server="20.10.24+dfsg1"), {}, container_wide),
        (dict(UBUNTU_22), {"engine_source": "docker-ce"}, per_endpoint),
    ]
    for profile, settings, expected in cases:
        assert _network_endpoint(target(profile, **settings), HUB_MAC) == expected, (profile, settings)
