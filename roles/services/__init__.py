"""Ensure the hub's Docker Compose project is written and up, re-applied only when its inputs changed."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import files

from roles.facts import ComposeServices
from roles.images import Images
from roles.preflight import Target
from roles.tls import Certificate

_jinja = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
)


def _up_command(project_directory: str, timeout: int) -> StringCommand:
    # --wait returns once the hub's health check passes: the deploy ends with a hub that answers.
    return StringCommand(
        "docker", "compose", "--project-directory", project_directory,
        "up", "--detach", "--wait", "--wait-timeout", str(timeout), "--remove-orphans",
    )


@operation(is_idempotent=True)
def stack_up(project_directory: str, services: list[str], timeout: int, inputs_changed: Callable[[], bool]):
    """
    ``docker compose up --wait`` when the project's inputs changed or one of ``services`` is not
    running and healthy; otherwise nothing, so a no-change run restarts nothing.
    """
    state = host.get_fact(ComposeServices, project_directory=project_directory)
    unhealthy = [name for name in services if state.get(name) not in ("healthy", "running")]
    if not inputs_changed() and not unhealthy:
        host.noop(f"compose project in {project_directory} is up: " + ", ".join(f"{k} {v}" for k, v in state.items()))
        return
    yield _up_command(project_directory, timeout)


@deploy("Hub services")
def ensure_services(target: Target, images: Images, certificate: Certificate, secrets: dict[str, str]) -> None:
    settings = target.settings
    project_dir = str(target.install_dir)
    config = _jinja.get_template("jupyterhub_config.py.j2").render(
        s=settings, singleuser_image=images.singleuser, wsl=target.profile.wsl, gpu_pool=target.gpu_pool
    )
    certificate_names = f"{settings.tls_mode}{target.names}{target.certificate_addresses}"
    inputs_hash = hashlib.sha256(f"{config}\0{certificate_names}".encode()).hexdigest()[:16]
    compose = _jinja.get_template("compose.yaml.j2").render(
        project=settings.compose_project,
        hub_image=images.hub,
        https_port=settings.https_port,
        network=settings.network_name,
        tls_dir=str(Path(certificate.cert).parent),
        secrets=secrets,
        inputs_hash=inputs_hash,
    )
    files.put(name="Hub configuration", src=io.StringIO(config), dest=f"{project_dir}/jupyterhub_config.py", mode="644")
    compose_file = files.put(
        name="Compose project", src=io.StringIO(compose), dest=f"{project_dir}/compose.yaml", mode="644"
    )
    stack_up(
        name="Hub running and healthy",
        project_directory=project_dir,
        services=["jupyterhub"],
        timeout=settings.hub_ready_timeout,
        inputs_changed=compose_file.did_change,
    )
