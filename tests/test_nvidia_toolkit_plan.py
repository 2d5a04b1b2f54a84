"""What the NVIDIA Container Toolkit role would run on Ubuntu 22.04 and 24.04 and Debian 12, with and without
WSL2 and Docker Desktop; and that a converged host yields no command at all."""

import hashlib
import json

import pytest
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.server import TmpDir

from jupyterhub_gpu.apt import PackageManagerState
from jupyterhub_gpu.facts import GPU, EngineRuntimes, GPUInventory, HostProfile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target
from roles.nvidia_toolkit import KEYRING, PACKAGES, ensure_toolkit
from tests.plan import commands_of, plan

UBUNTU_24 = dict(os_id="ubuntu", os_version="24.04", os_codename="noble", arch="x86_64", pid1="systemd")
UBUNTU_22_WSL = dict(os_id="ubuntu", os_version="22.04", os_codename="jammy", arch="x86_64", pid1="init", wsl=True)
DEBIAN_12 = dict(os_id="debian", os_version="12", os_codename="bookworm", arch="x86_64", pid1="sshd")
TWO_GPUS = GPUInventory("/usr/bin/nvidia-smi", (
    GPU("0", "GPU-0a0a0a0a-0000-4000-8000-000000000000", "RTX A6000", 49140),
    GPU("1", "GPU-1b1b1b1b-1111-4111-8111-111111111111", "RTX A6000", 49140),
))
WSL_GPU = GPUInventory("/usr/lib/wsl/lib/nvidia-smi", TWO_GPUS.gpus[:1])
SOURCES = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
REPO = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"


def facts(installed=(), keyring=False, daemon_json=None, sources=None, engine_runtimes=("runc",)):
    def file(path):
        return {"mode": 644, "size": 1} if (path == KEYRING and keyring) or (path == SOURCES and sources) else None

    def sha1(path):
        return hashlib.sha1(sources.encode()).hexdigest() if path == SOURCES and sources else None

    return {
        DebPackages: {name: ["1.17.8-1"] for name in installed},
        File: file,
        Sha1File: sha1,
        Directory: lambda path: {"mode": 755} if path == "/etc/apt/sources.list.d" else None,
        PackageManagerState: {"busy": [], "interrupted": False},
        TmpDir: "/tmp",
        FileContents: lambda path: daemon_json.splitlines() if daemon_json else None,
        EngineRuntimes: {"runtimes": list(engine_runtimes), "default": "runc"},
    }


def target(profile, gpus=TWO_GPUS, **settings):
    return Target(HubSettings(**settings), HostProfile(**profile), gpus)


APT_INSTALL = ('DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::="--force-confdef" '
               '-o Dpkg::Options::="--force-confold" install --no-install-recommends')
STOP_WITHOUT_SYSTEMD = ('/etc/init.d/docker stop >/dev/null 2>&1; pid=$(cat /var/run/docker.pid 2>/dev/null); '
                        '[ -n "$pid" ] && kill "$pid" 2>/dev/null; for i in $(seq 60); do [ -e /var/run/docker.pid ] '
                        '|| break; sleep 1; done')


@pytest.mark.parametrize("profile", [UBUNTU_24, UBUNTU_22_WSL, DEBIAN_12],
                         ids=["ubuntu-24.04", "wsl-ubuntu-22.04", "debian-12"])
def test_fresh_gpu_host_gets_nvidias_install_steps(monkeypatch, profile):
    gpus = WSL_GPU if profile.get("wsl") else TWO_GPUS
    planned = plan(monkeypatch, facts(), ensure_toolkit, target(profile, gpus))
    restart = (["systemctl restart docker"] if profile["pid1"] == "systemd"
               else [STOP_WITHOUT_SYSTEMD, "/usr/local/sbin/jupyterhub-gpu-start-docker 60"])
    sources = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
    assert [(name.removeprefix("NVIDIA Container Toolkit | "), commands) for name, commands in planned if commands] == [
        ("Update apt lists for curl, gnupg", ["apt-get update", "touch /var/lib/apt/periodic/update-success-stamp"]),
        ("Install curl, gnupg (to fetch NVIDIA's repository key)", [f"{APT_INSTALL} curl gnupg"]),
        ("NVIDIA's repository key", [f"curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --batch "
                                     f"--yes --dearmor -o {KEYRING} && chmod 644 {KEYRING}"]),
        ("NVIDIA's apt repository", [f"upload {sources}", f"chmod 644 {sources}"]),
        ("Update apt lists for NVIDIA's repository", ["apt-get update"]),
        ("NVIDIA Container Toolkit packages", [f"{APT_INSTALL} {' '.join(PACKAGES)}"]),
        ("Docker engine knows the nvidia runtime",
         ["nvidia-ctk runtime configure --runtime=docker --config=/etc/docker/daemon.json"]),
        ("Restart the Docker engine for the nvidia runtime", restart),
    ]
    assert not any("nvidia-driver" in c or "cuda-drivers" in c for c in commands_of(planned)), "never a Linux driver"


def test_pinned_version_pins_all_four_packages(monkeypatch):
    planned = plan(monkeypatch, facts(), ensure_toolkit, target(UBUNTU_24, nvidia_toolkit_version="1.17.8-1"))
    assert dict(planned)["NVIDIA Container Toolkit | NVIDIA Container Toolkit packages"] == [
        f"{APT_INSTALL} " + " ".join(f"{p}=1.17.8-1" for p in PACKAGES)]


def test_docker_desktop_and_gpu_less_hosts_get_nothing(monkeypatch):
    desktop = dict(UBUNTU_22_WSL, docker_server="28.4.0", docker_os="Docker Desktop")
    assert plan(monkeypatch, facts(), ensure_toolkit, target(desktop, WSL_GPU)) == []
    assert plan(monkeypatch, facts(), ensure_toolkit, target(UBUNTU_24, GPUInventory())) == []
    assert plan(monkeypatch, facts(), ensure_toolkit, target(UBUNTU_24, gpu_ids="none")) == []


def test_converged_host_yields_no_command_and_no_engine_restart(monkeypatch):
    daemon = json.dumps({"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}})
    converged = facts(installed=PACKAGES + ["curl", "gnupg"], keyring=True, daemon_json=daemon,
                      sources=f"deb [signed-by={KEYRING}] {REPO} /\n", engine_runtimes=("nvidia", "runc"))
    planned = plan(monkeypatch, converged, ensure_toolkit, target(UBUNTU_24))
    assert planned and commands_of(planned) == []


def test_a_deploy_stopped_between_configuring_the_runtime_and_the_restart_restarts_the_engine_next_time(monkeypatch):
    """daemon.json has the nvidia runtime (the stopped run wrote it), so nothing changes this time, but the engine
    that runs was never restarted and does not know it: containers would get no GPU. Found by the faults test
    (a SIGKILL landed between the two operations)."""
    daemon = json.dumps({"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}})
    stopped = facts(installed=PACKAGES + ["curl", "gnupg"], keyring=True, daemon_json=daemon,
                    sources=f"deb [signed-by={KEYRING}] {REPO} /\n", engine_runtimes=("runc",))
    assert [name for name, commands in plan(monkeypatch, stopped, ensure_toolkit, target(UBUNTU_24)) if commands] == [
        "NVIDIA Container Toolkit | Restart the Docker engine for the nvidia runtime"]


def test_runtime_added_to_an_existing_daemon_json_restarts_the_engine(monkeypatch):
    existing = facts(installed=PACKAGES + ["curl", "gnupg"], keyring=True, daemon_json='{"log-driver": "local"}',
                     sources=f"deb [signed-by={KEYRING}] {REPO} /\n")
    commands = commands_of(plan(monkeypatch, existing, ensure_toolkit, target(UBUNTU_24)))
    assert commands == ["nvidia-ctk runtime configure --runtime=docker --config=/etc/docker/daemon.json",
                        "systemctl restart docker"]


def test_gpu_check_passes_quietly_and_explains_known_failures(monkeypatch):
    from pyinfra.api import OperationError

    from roles.nvidia_toolkit import GPUContainerCheck, verify_gpus

    seen = {GPUContainerCheck: lambda image: {"ok": True, "output": "NVIDIA_VISIBLE_DEVICES=all"}}
    assert plan(monkeypatch, seen, verify_gpus, target(UBUNTU_24), "base:1") == [
        ("GPU check | Containers get GPUs (2 in the pool)", [])
    ]
    missing_hook = {GPUContainerCheck: lambda image: {
        "ok": False,
        "output": 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
    }}
    with pytest.raises(OperationError, match="NVIDIA Container Toolkit is missing"):
        plan(monkeypatch, missing_hook, verify_gpus, target(UBUNTU_24), "base:1")
