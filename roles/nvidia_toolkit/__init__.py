"""Ensure the NVIDIA Container Toolkit where there are GPUs, the way NVIDIA's install guide does it, and
that containers really get GPUs."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

from pyinfra import host
from pyinfra.api import FactBase, OperationError, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import apt, files
from pyinfra.operations.util import any_changed

from gpudockerspawner.placement import resource_of, resource_variable
from jupyterhub_gpu.apt import ensure_installed, lists_read_for
from jupyterhub_gpu.facts import EngineRuntimes
from jupyterhub_gpu.target import Target
from roles.docker_engine import DAEMON_JSON, daemon_options, engine_restarted

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
CDI_SPEC = "/etc/cdi/nvidia.yaml"
RUNTIME_CONFIG = "/etc/nvidia-container-runtime/config.toml"
# NVIDIA's guide installs these four together, at one version when pinned. No driver: on WSL2 the
# driver is Windows', on Linux it is the host's own business.
PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
            "libnvidia-container1"]

# What the known failures of `docker run --gpus` mean, and what to do.
KNOWN_FAILURES = {
    'could not select device driver "" with capabilities: [[gpu]]':
        "the Docker engine has no NVIDIA runtime hook: the NVIDIA Container Toolkit is missing or the engine "
        "was not restarted after `nvidia-ctk runtime configure`",
    "WSL environment detected but no adapters were found":
        "WSL2 sees no GPU: update the NVIDIA driver on Windows and WSL itself (`wsl --update`)",
}


@operation(is_idempotent=True)
def dearmored_key(url: str, keyring: str):
    """The repository key, fetched and dearmored into ``keyring`` for apt's ``signed-by``."""
    if host.get_fact(File, path=keyring):
        host.noop(f"keyring {keyring} is present")
        return
    yield StringCommand("curl", "-fsSL", QuoteString(url), "|", "gpg", "--batch", "--yes", "--dearmor", "-o",
                        QuoteString(keyring), "&&", "chmod", "644", QuoteString(keyring))


@operation(is_idempotent=True)
def docker_runtime_configured(config: str = DAEMON_JSON):
    """`nvidia-ctk runtime configure --runtime=docker`, only when ``config`` lacks the nvidia runtime."""
    lines = host.get_fact(FileContents, path=config)
    text = "\n".join(lines or []).strip()
    runtimes = json.loads(text).get("runtimes", {}) if text else {}
    if "nvidia" in runtimes:
        host.noop(f"{config} already has the nvidia runtime")
        return
    yield StringCommand("nvidia-ctk", "runtime", "configure", "--runtime=docker", QuoteString(f"--config={config}"))


def swarm_resource_line(variables: list[str]) -> str:
    """NVIDIA's Swarm set-up: the runtime takes a task's units from the variables Swarm sets (one per kind of unit
    the node advertises; it joins their devices), not from NVIDIA_VISIBLE_DEVICES."""
    return f'swarm-resource = "{",".join(variables)}"'


def with_swarm_resource(lines: list[str] | None, variables: list[str]) -> str | None:
    """The runtime's config.toml with ``swarm-resource`` naming ``variables`` (its commented default or an earlier
    value replaced, or the key put before the first table, where TOML keeps top-level keys); None where it does
    already."""
    wanted = swarm_resource_line(variables)
    lines = list(lines or [])
    if wanted in (line.strip() for line in lines):
        return None
    at = next((i for i, line in enumerate(lines) if re.match(r"^\s*#?\s*swarm-resource\s*=", line)), None)
    if at is not None:
        lines[at] = wanted
    else:
        first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
        lines.insert(first_table, wanted)
    return "\n".join(lines) + "\n"


@operation(is_idempotent=True)
def swarm_resource_read(variables: list[str], config: str = RUNTIME_CONFIG):
    """NVIDIA's runtime gives a container the units that Swarm assigned its task (``swarm-resource``)."""
    text = with_swarm_resource(host.get_fact(FileContents, path=config), variables)
    if text is None:
        host.noop(f"{config} has {swarm_resource_line(variables)}")
        return
    yield from files.put._inner(src=io.StringIO(text), dest=config, mode="644")


@operation(is_idempotent=True)
def cdi_spec(path: str = CDI_SPEC):
    if host.get_fact(File, path=path):
        host.noop(f"CDI spec {path} is present")
        return
    yield StringCommand("nvidia-ctk", "cdi", "generate", QuoteString(f"--output={path}"))


class GPUContainerCheck(FactBase):
    """What a throwaway container with `--gpus all` sees, or the error that stopped it."""

    def command(self, image: str) -> StringCommand:
        return StringCommand(
            "docker", "run", "--rm", "--gpus", "all", QuoteString(image), "sh", "-c",
            QuoteString('nvidia-smi -L 2>/dev/null || echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"'),
            "2>&1;", 'echo "exit=$?"',
        )

    def process(self, output) -> dict:
        lines = list(output)
        code = int(lines[-1].removeprefix("exit=")) if lines and lines[-1].startswith("exit=") else 1
        return {"ok": code == 0, "output": "\n".join(lines[:-1]).strip()}


@operation(is_idempotent=True)
def containers_get_gpus(image: str):
    """Check that a container asking for every GPU starts and sees them; explain the known failures."""
    check = host.get_fact(GPUContainerCheck, image=image)
    if not check["ok"]:
        for symptom, meaning in KNOWN_FAILURES.items():
            if symptom in check["output"]:
                raise OperationError(f"containers get no GPU: {meaning} (docker said: {symptom})")
        raise OperationError(f"containers get no GPU; `docker run --gpus all` said:\n{check['output']}")
    host.noop(f"a container with --gpus all sees: {check['output'].splitlines()[-1] if check['output'] else '?'}")
    yield from ()  # a check: it changes nothing


@operation(is_idempotent=True)
def engine_runs_nvidia(use_systemd: bool, changed: Callable[[], bool], as_default: bool = False):
    """The running engine knows the nvidia runtime (as its default too, on a Swarm GPU node): restarted where this
    run changed its configuration, and where the engine that runs does not have what daemon.json says (a deploy
    stopped between writing it and the restart). Otherwise left alone: running user servers stay up."""
    running = host.get_fact(EngineRuntimes) or {"runtimes": [], "default": ""}
    knows = "nvidia" in running["runtimes"] and (not as_default or running["default"] == "nvidia")
    # Before execution (pyinfra without -y shows what would change) earlier operations have no results yet.
    now_changed = changed() if host.state.is_executing else False
    if knows and not now_changed:
        host.noop("the running Docker engine knows the nvidia runtime" + (", its default" if as_default else ""))
        return
    yield from engine_restarted._inner(use_systemd=use_systemd)


@deploy("NVIDIA Container Toolkit")
def ensure_toolkit(target: Target) -> None:
    if not target.gpu_pool:
        host.log("no GPU to hand out: the hub runs CPU-only and the NVIDIA Container Toolkit is not needed")
        return
    if target.profile.docker_desktop:
        host.log("Docker Desktop's engine brings its own GPU support (Settings > Resources > WSL integration): "
                 "the toolkit and this distribution's daemon.json would not be used, so they are left alone")
        return
    settings = target.settings
    ensure_installed(["curl", "gnupg"], "to fetch NVIDIA's repository key")
    dearmored_key(name="NVIDIA's repository key", url=settings.nvidia_key_url, keyring=KEYRING)
    repository = files.put(
        name="NVIDIA's apt repository",
        src=_sources_entry(settings.nvidia_repo_url),
        dest="/etc/apt/sources.list.d/nvidia-container-toolkit.list",
        mode="644",
    )
    lists_read_for(repository, PACKAGES, "NVIDIA")
    version = settings.nvidia_toolkit_version
    apt.packages(
        name="NVIDIA Container Toolkit packages",
        packages=[f"{package}={version}" for package in PACKAGES] if version else PACKAGES,
        no_recommends=True,
    )
    changed = [docker_runtime_configured(name="Docker engine knows the nvidia runtime")]
    if target.cluster and target.cluster.gpu_node:
        changed += _swarm_gpu_node(target)
    engine_runs_nvidia(name="Restart the Docker engine for the nvidia runtime", use_systemd=target.profile.systemd,
                       changed=any_changed(*changed), as_default=bool(target.cluster and target.cluster.gpu_node))
    if settings.nvidia_cdi:
        cdi_spec(name="CDI spec for NVIDIA GPUs")


def swarm_resources(target: Target) -> list[tuple[str, str]]:
    """What a Swarm GPU node advertises: (generic resource, UUID) for each unit of its pool, one resource per kind
    of unit (placement.resource_of)."""
    return [(resource_of(gpu.kind, gpu.profile), gpu.uuid) for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool]


def _swarm_gpu_node(target: Target) -> list:
    """NVIDIA's set-up for a Swarm GPU node: the engine advertises the node's units as generic resources and runs
    every container with the nvidia runtime (a service cannot choose one), which reads Swarm's assignment."""
    resources = swarm_resources(target)
    advertised = daemon_options(
        name="Docker engine advertises its GPUs to the swarm, with the nvidia runtime as its default",
        options={"node-generic-resources": [f"{resource}={uuid}" for resource, uuid in resources],
                 "default-runtime": "nvidia"})
    variables = sorted({resource_variable(resource) for resource, _ in resources})
    read = swarm_resource_read(name="NVIDIA's runtime takes the GPUs that Swarm assigned", variables=variables)
    return [advertised, read]


@deploy("GPU check")
def verify_gpus(target: Target, image: str) -> None:
    if target.gpu_pool:
        containers_get_gpus(name=f"Containers get GPUs ({len(target.gpu_pool)} in the pool)", image=image)


def _sources_entry(url: str) -> io.StringIO:
    return io.StringIO(f"deb [signed-by={KEYRING}] {url} /\n")
