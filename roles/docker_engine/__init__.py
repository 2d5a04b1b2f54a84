"""Ensure a running Docker engine with Compose v2: leave a working one alone, else install and start one."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, deploy, operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, files, systemd, sysvinit

from jupyterhub_gpu.apt import ensure_installed, lists_read_for, package_manager_ready
from jupyterhub_gpu.facts import DockerServerVersion
from jupyterhub_gpu.target import Target
from roles.docker_engine.compose_binary import compose_binary

CE_PACKAGES = ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"]
CLI_PLUGINS = "/usr/local/lib/docker/cli-plugins"
DAEMON_JSON = "/etc/docker/daemon.json"


# Where no systemd runs the engine: the one way it is started, by the deploy and at boot.
START_SCRIPT = "/usr/local/sbin/jupyterhub-gpu-start-docker"
# Where SysV init boots the host (no systemd, not WSL, whose [boot] command starts the engine instead).
BOOT_SERVICE = "jupyterhub-gpu-docker"
FILES = Path(__file__).parent / "files"


@operation(is_idempotent=True)
def engine_running(timeout: int = 60):
    """Start the Docker engine with START_SCRIPT if it does not answer (hosts where PID 1 is not systemd)."""
    version = host.get_fact(DockerServerVersion)
    if version:
        host.noop(f"Docker engine {version} is running")
        return
    yield StringCommand(START_SCRIPT, str(timeout))


@operation(is_idempotent=False)
def engine_restarted(use_systemd: bool, timeout: int = 60):
    """Restart the Docker engine (containers with a restart policy come back with it)."""
    if use_systemd:
        yield "systemctl restart docker"
        return
    yield StringCommand(
        "/etc/init.d/docker stop >/dev/null 2>&1; pid=$(cat /var/run/docker.pid 2>/dev/null); "
        '[ -n "$pid" ] && kill "$pid" 2>/dev/null; '
        f"for i in $(seq {timeout}); do [ -e /var/run/docker.pid ] || break; sleep 1; done"
    )
    yield StringCommand(START_SCRIPT, str(timeout))


def merged_daemon_json(lines: list[str] | None, options: dict, config: str = DAEMON_JSON) -> str | None:
    """``daemon.json``'s text with ``options`` set and every other key kept; None where it has them already."""
    try:
        current = json.loads("\n".join(lines)) if lines and "".join(lines).strip() else {}
    except json.JSONDecodeError as error:
        raise OperationError(f"{config} is not valid JSON ({error}): mend it, then deploy again") from None
    if all(current.get(key) == value for key, value in options.items()):
        return None
    return json.dumps({**current, **options}, indent=4) + "\n"


@operation(is_idempotent=True)
def daemon_options(options: dict, config: str = DAEMON_JSON):
    """Merge ``options`` into the engine's ``daemon.json``, keeping every other key it has."""
    merged = merged_daemon_json(host.get_fact(FileContents, path=config), options, config)
    if merged is None:
        said = ", ".join(f'"{key}": {json.dumps(value)}' for key, value in options.items())
        host.noop(f"{config} already has {said}")
        return
    yield from files.put._inner(src=io.StringIO(merged), dest=config, mode="644")


@operation(is_idempotent=False)
def engine_reloaded(use_systemd: bool):
    """Make the Docker engine read ``daemon.json`` again (SIGHUP): no container stops."""
    yield "systemctl reload docker" if use_systemd else 'kill -HUP "$(cat /var/run/docker.pid)"'


@deploy("Docker engine")
def ensure_engine(target: Target):
    profile = target.profile
    if profile.docker_server:
        where = "Docker Desktop's engine" if profile.docker_desktop else f"Docker engine {profile.docker_server}"
        host.log(f"{where} already answers; leaving it as it is")
    elif target.settings.engine_source == "docker-ce":
        _docker_ce_repository(target)
        apt.packages(name="Install Docker CE", packages=CE_PACKAGES)
    else:
        # iptables: dockerd needs it to wire its bridges, and Debian only recommends it.
        ensure_installed(["docker.io", "iptables"], "the Docker engine", recommends=True)

    if profile.systemd and not profile.docker_desktop:
        systemd.service(name="Docker engine enabled and running", service="docker", running=True, enabled=True)
    elif not profile.docker_desktop:
        # /usr/local/sbin is the distribution's: no check that it exists (a round trip of each no-change run).
        files.put(name="Docker engine start script", src=str(FILES / "start-docker-engine.sh"), dest=START_SCRIPT,
                  mode="755", create_remote_dir=False)
        if not profile.wsl:
            _started_at_boot()
        engine_running(name="Docker engine running")
    if not profile.docker_desktop:
        _live_restore(target)

    _ensure_compose_v2(target)


def _live_restore(target: Target) -> None:
    """Containers that keep running while the engine is down: a killed or upgraded engine, or its restart
    for the NVIDIA runtime, then costs nobody their kernels. Reloadable, so set without a restart. Off in a
    cluster: Docker refuses swarm mode with it."""
    configured = daemon_options(name="Docker engine keeps containers running while it is down (live-restore)",
                                options={"live-restore": target.live_restore})
    engine_reloaded(name="Docker engine reloads daemon.json", use_systemd=target.profile.systemd,
                    _if=configured.did_change)


def _started_at_boot() -> None:
    """Without systemd, a host booted by SysV init runs /etc/rc2.d's start scripts: ours starts the engine,
    which brings back the hub and every server by their restart policies."""
    files.put(name="Docker engine init script", src=str(FILES / f"{BOOT_SERVICE}.init"),
              dest=f"/etc/init.d/{BOOT_SERVICE}", mode="755", create_remote_dir=False)
    # Late in the boot (after networking), and no stop links: stopping the engine is the shutdown's job.
    sysvinit.enable(name="Docker engine started at boot (runlevels 2-5)", service=BOOT_SERVICE, start_priority=90,
                    stop_levels=())


def _docker_ce_repository(target: Target) -> None:
    profile = target.profile
    base = f"{target.settings.engine_repo_url.rstrip('/')}/{profile.os_id}"
    keyring = "/etc/apt/keyrings/docker.asc"
    files.directory(name="apt keyrings directory", path="/etc/apt/keyrings", mode="755")
    files.download(name="Docker's apt key", src=f"{base}/gpg", dest=keyring, mode="644")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(profile.arch, profile.arch)
    repo = apt.repo(
        name="Docker's apt repository",
        src=f"deb [arch={arch} signed-by={keyring}] {base} {profile.os_codename} stable",
        filename="docker",
    )
    lists_read_for(repo, CE_PACKAGES, "Docker")


def _ensure_compose_v2(target: Target) -> None:
    profile = target.profile
    if profile.compose:
        host.log(f"Docker Compose {profile.compose} is available")
        return
    if target.settings.engine_source == "docker-ce":
        return  # docker-compose-plugin is among CE_PACKAGES
    if profile.os_id == "ubuntu" or profile.os_version not in ("11", "12"):
        # Ubuntu calls it docker-compose-v2; Debian 13 ships v2 as docker-compose.
        package = "docker-compose-v2" if profile.os_id == "ubuntu" else "docker-compose"
        package_manager_ready(name="Package manager free for Docker Compose v2")
        apt.packages(name="Install Docker Compose v2", packages=[package])
        return
    # Debian 12 packages only Compose v1: bring the static v2 plugin from the controller.
    files.directory(name="Docker CLI plugins directory", path=CLI_PLUGINS, mode="755")
    files.put(
        name="Install the Docker Compose v2 plugin",
        src=compose_binary(profile.arch),
        dest=f"{CLI_PLUGINS}/docker-compose",
        mode="755",
    )
