"""Ensure the hub's Docker Compose project: its configuration written and the hub up and healthy."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import yaml
from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import files
from pyinfra.operations.util import any_changed

from jupyterhub_gpu.facts import ComposeServices
from roles.images import Images
from jupyterhub_gpu.target import Target
from roles.secrets import HubSecrets
from roles.tls import Certificate

FILES = Path(__file__).parent / "files"
# The scopes the ops service token has (deploy checks, admins' scripts).
OPS_TOKEN_SCOPES = ["admin:users", "admin:groups", "admin:servers", "access:servers", "read:hub", "list:users",
                    "access:services"]
HEALTHY = ("healthy", "running")


def hub_settings(target: Target, images: Images) -> dict:
    """What the hub's static configuration reads (/etc/jupyterhub/hub.json): data, never code."""
    s = target.settings
    return {
        "hub": {
            "log_level": s.hub_log_level,
            "admin_users": list(s.admin_users),
            "ops_token": True,
            "ops_token_scopes": OPS_TOKEN_SCOPES,
        },
        "authenticator": {
            "kind": s.authenticator,
            "allowed_users": list(s.allowed_users),
            "allowed_groups": list(s.allowed_groups),
            "allow_all": s.allow_all,
            "native": {
                "open_signup": s.open_signup,
                "minimum_password_length": s.native_minimum_password_length,
                "check_common_password": s.native_check_common_password,
                "allowed_failed_logins": s.native_allowed_failed_logins,
                "seconds_before_next_try": s.native_seconds_before_next_try,
            },
            "ldap": {
                "server_address": s.ldap_server_address,
                "server_port": s.ldap_server_port,
                "tls": s.ldap_tls,
                "ca_file": "ldap_ca" if s.ldap_ca_file else None,
                "bind_dn_template": list(s.ldap_bind_dn_template),
                "user_search_base": s.ldap_user_search_base,
                "user_attribute": s.ldap_user_attribute,
                "search_user": s.ldap_search_user,
            },
            "oauth": {
                "provider": s.oauth_provider,
                "client_id": s.oauth_client_id,
                "callback_url": target.oauth_callback_url,
                **target.oauth_endpoints,
                "scopes": list(s.oauth_scopes),
                "username_claim": s.oauth_username_claim,
                "groups_claim": s.oauth_groups_claim,
                "azuread_tenant_id": s.oauth_azuread_tenant_id,
                "gitlab_url": s.oauth_gitlab_url,
            },
        },
        "spawner": {
            "image": images.singleuser,
            "network": s.network_name,
            "home_volume_prefix": f"{s.compose_project}-user-",
            "gpu_ids": list(target.gpu_pool),
            "gpus_per_user": s.gpus_per_user,
            "users_per_gpu": s.users_per_gpu,
            "on_exhausted": s.gpu_on_exhausted,
            "devices_filtered": not target.profile.wsl,
            "pool_label": s.compose_project,
            "mem_limit": s.user_mem_limit,
            "sudo_groups": list(s.sudo_groups),
        },
    }


def compose_project(target: Target, images: Images, certificate: Certificate, secrets: HubSecrets) -> dict:
    """The Compose project as data; written out by a YAML emitter, so no value can add structure."""
    s = target.settings
    hub = {
        "image": images.hub,
        "container_name": "jupyterhub",
        # Not "unless-stopped": Docker 20.10 leaves such containers down after its engine was killed.
        "restart": "always",
        "ports": [f"{s.https_port}:8443"],
        "networks": [s.network_name],
        # What belongs to one run of the hub (the proxy's pid file) lives on a tmpfs that every start
        # gets empty: a pid left on a volume by a killed hub can name another process after a restart.
        "tmpfs": ["/run/jupyterhub"],
        "working_dir": "/run/jupyterhub",
        "volumes": [
            "/var/run/docker.sock:/var/run/docker.sock",
            "hub-data:/srv/jupyterhub",
            "./jupyterhub_config.py:/etc/jupyterhub/jupyterhub_config.py:ro",
            "./hub.json:/etc/jupyterhub/hub.json:ro",
            f"{certificate.directory}:/etc/jupyterhub/tls:ro",
        ],
        "secrets": sorted(secrets.paths),
        "command": ["jupyterhub", "--config", "/etc/jupyterhub/jupyterhub_config.py"],
        "healthcheck": {
            "test": ["CMD", "python3", "-c", "import ssl, urllib.request; urllib.request.urlopen("
                     "'https://127.0.0.1:8443/hub/health', context=ssl._create_unverified_context(), timeout=5)"],
            "interval": "5s",
            "timeout": "6s",
            "retries": 3,
            "start_period": "120s",
        },
    }
    return {
        "name": s.compose_project,
        "services": {"jupyterhub": hub},
        "networks": {s.network_name: {"external": True}},
        "volumes": {"hub-data": {"name": f"{s.compose_project}-hub-data"}},
        "secrets": {name: {"file": path} for name, path in sorted(secrets.paths.items())},
    }


def _yaml(document: dict, heading: str) -> io.StringIO:
    return io.StringIO(heading + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=120))


@operation(is_idempotent=True)
def stack_up(project_directory: str, services: list[str], timeout: int, inputs_changed: Callable[[], bool]):
    """
    ``docker compose up --wait`` with fresh containers when the project's inputs changed or one of
    ``services`` is not running and healthy (starting, restarting, unhealthy, gone); otherwise nothing,
    so a no-change run restarts nothing. User servers are not part of the project and keep running.
    """
    state = host.get_fact(ComposeServices, project_directory=project_directory) or {}
    unhealthy = [name for name in services if state.get(name) not in HEALTHY]
    if not inputs_changed() and not unhealthy:
        host.noop(f"compose project in {project_directory} is up: " + ", ".join(f"{k} {v}" for k, v in state.items()))
        return
    # --wait returns once the hub's health check passes: the deploy ends with a hub that answers.
    yield StringCommand(
        "docker", "compose", "--project-directory", project_directory,
        "up", "--detach", "--wait", "--wait-timeout", str(timeout), "--force-recreate", "--remove-orphans",
    )


@deploy("Hub services")
def ensure_services(target: Target, images: Images, certificate: Certificate, secrets: HubSecrets) -> None:
    project_dir = str(target.install_dir)
    heading = "# Written by the jupyterhub-gpu deploy; deploy again rather than edit.\n"
    config = files.put(name="Hub configuration (static)", src=str(FILES / "jupyterhub_config.py"),
                       dest=f"{project_dir}/jupyterhub_config.py", mode="644")
    settings = files.put(
        name="Hub settings", dest=f"{project_dir}/hub.json", mode="644",
        src=io.StringIO(json.dumps(hub_settings(target, images), indent=2, sort_keys=True) + "\n"),
    )
    compose = files.put(
        name="Compose project", dest=f"{project_dir}/compose.yaml", mode="644",
        src=_yaml(compose_project(target, images, certificate, secrets),
                  heading + "# `docker compose ps` and `docker compose logs -f jupyterhub` work here.\n"),
    )
    stack_up(
        name="Hub running and healthy",
        project_directory=project_dir,
        services=["jupyterhub"],
        timeout=target.settings.hub_ready_timeout,
        inputs_changed=lambda: any_changed(config, settings, compose)() or secrets.changed() or certificate.changed(),
    )
