"""Ensure the hub's Docker Compose project: its configuration written and the hub up and healthy."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import yaml
from pyinfra import context, host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files
from pyinfra.operations.util import any_changed

from jupyterhub_gpu.facts import AccountIds, ComposeServices
from jupyterhub_gpu.settings import GPU_CHECK_USER, SERVICE_ACCOUNT, hub_traits
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import contract
from roles import gpu_check, gpu_sampler, shared_folders
from roles.images import Images
from roles.network import GPU_VIEW_PORT, HUB_API_PORT, HUB_MAC, PROXY_CONTAINER, PROXY_MAC
from roles.secrets import HubSecrets
from roles.tls import Certificate

FILES = Path(__file__).parent / "files"
# The scopes the ops service token has (deploy checks, admins' scripts).
# The ops service's token, where ops_token asks for one: enough to watch the hub, nothing to change it.
OPS_TOKEN_SCOPES = ["read:hub", "list:users", "read:users", "read:servers", "access:services!service=gpus"]
HEALTHY = ("healthy", "running")
# Inside the hub's container: the GPU service's last figures (for the gauges and the cullers) and the usage record.
FIGURES_FILE = "/run/jupyterhub/gpu/figures.json"
USAGE_DB = "/srv/jupyterhub/gpu-usage.sqlite"


def gpu_busy_at(target: Target) -> int:
    """Utilisation (percent) from which a GPU counts as busy: the idleness mark where one is set, else 5."""
    return target.settings.gpu_idle_utilization or 5



def _standard(target: Target):
    """The profile of users who may have no GPU: the first without one."""
    return next(profile for profile in target.offered_profiles if not profile.gpu)


# The claim that names a hub user where the inventory names none: unique, and never handed to someone else.
OAUTH_USERNAME_CLAIMS = {"generic": "preferred_username", "azuread": "oid"}


def hub_settings(target: Target, images: Images) -> contract.HubContract:
    """What the hub's static configuration reads (/etc/jupyterhub/hub.json, see jupyterhub_gpu_hub.contract): data,
    never code; every value the hub derives from the settings is computed here."""
    s = target.settings
    standard = _standard(target)
    endpoints = target.oauth_endpoints
    return contract.HubContract(
        # Settings that map one to one onto a trait, from the settings model's own table.
        traits=hub_traits(s),
        hub=contract.Hub(
            api_port=HUB_API_PORT,
            view_port=GPU_VIEW_PORT,
            sharing=s.server_sharing,
            public_url=target.hub_url,
            subdomain_host=target.subdomain_host,
            hsts_max_age=target.hsts_max_age,
            admin_users=list(s.admin_users),
            ops_token=s.ops_token,
            ops_token_scopes=OPS_TOKEN_SCOPES,
            metrics_token=s.metrics_token,
            gpu_check=contract.GpuCheck(service=gpu_check.SERVICE, user=gpu_check.USER, scopes=gpu_check.SCOPES)
            if target.gpu_pool else None,
            activity_interval=s.activity_interval,
        ),
        culler=contract.Culler(
            idle_timeout=s.idle_timeout,
            max_age=s.max_age,
            gpu_idle_timeout=s.gpu_idle_timeout if target.hands_out_gpus else 0,
            gpu_max_age=s.gpu_max_age if target.hands_out_gpus else 0,
            cull_every=s.cull_every,
            gpu_idle=bool(s.gpu_idle_utilization) and target.hands_out_gpus,
            busy_keeps=s.gpu_busy_is_activity and target.hands_out_gpus,
            busy_at=gpu_busy_at(target),
            warnings=list(s.cull_warnings),
        ),
        gpu_figures=contract.GpuFigures(
            samplers=gpu_sampler.sampler_urls(target),
            on_nodes=bool(target.cluster),
            interval=s.gpu_sample_interval,
            busy_at=gpu_busy_at(target),
            figures_file=FIGURES_FILE,
            usage_db=USAGE_DB,
        ),
        authenticator=contract.Authenticator(
            kind=s.authenticator,
            allowed_users=list(s.allowed_users),
            reserved_names=[GPU_CHECK_USER],
            allowed_groups=list(s.allowed_groups),
            allow_all=s.allow_all,
            ldap=contract.Ldap(ca_file="ldap_ca" if s.ldap_ca_file else None,
                               looks_up_dn=bool(s.ldap_user_search_base)),
            oauth=contract.OAuth(
                provider=s.oauth_provider,
                callback_url=target.oauth_callback_url,
                authorize_url=endpoints.get("authorize_url"),
                token_url=endpoints.get("token_url"),
                userdata_url=endpoints.get("userdata_url"),
                scopes=list(s.oauth_scopes),
                username_claim=s.oauth_username_claim or OAUTH_USERNAME_CLAIMS.get(s.oauth_provider),
                groups_claim=s.oauth_groups_claim,
            ),
        ),
        spawner=contract.Spawner(
            image=images.profiles.get(standard.name, images.singleuser),
            profiles=[contract.Profile(name=profile.name, image=images.profiles.get(profile.name, images.singleuser),
                                       gpu=profile.gpu, gpu_kinds=list(profile.gpu_kinds),
                                       cpu_limit=profile.cpu_limit or target.user_cpu_limit,
                                       mem_limit=profile.mem_limit or target.user_mem_limit)
                      for profile in target.offered_profiles],
            own_user_images=sorted({images.profiles.get(profile.name, images.singleuser)
                                    for profile in target.offered_profiles if profile.image or s.singleuser_image}),
            home_volume_prefix=f"{s.compose_project}-user-",
            shared_volume_prefix=shared_folders.volume_prefix(target),
            gpu_ids=list(target.gpu_pool),
            gpu_units={gpu.uuid: {"kind": gpu.kind, "label": gpu.label, "share": gpu.share}
                       for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool},
            devices_filtered=not target.profile.wsl,
            pool_label=s.compose_project,
            mem_limit=standard.mem_limit or target.user_mem_limit,
            cpu_limit=standard.cpu_limit or target.user_cpu_limit,
            pids_limit=s.user_pids_limit,
            cpu_shares=s.user_cpu_shares,
            spawns_at_once=target.spawns_at_once,
            hsts_max_age=target.hsts_max_age,
            sudo_groups=list(s.sudo_groups),
            activity_interval=s.activity_interval,
            swarm=contract.Swarm(home_volume_driver=s.home_volume_driver,
                                 home_volume_driver_options=dict(s.home_volume_driver_options))
            if target.cluster else None,
        ),
    )


# TLS 1.2 offers these only (ECDHE with AES-GCM or ChaCha20-Poly1305); TLS 1.3 and its suites are Node's
# defaults, and Node refuses TLS 1.0 and 1.1.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
# The hub and the proxy start as root only to hand their unprivileged user (service_uid) what it may have:
# these capabilities are for that, and no process in them can gain privileges.
ENTRY_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]


# Where the hub reaches the Docker engine.
ENGINE_SOCKET = "/run/docker-engine/docker.sock"


def _engine_socket_mount(target: Target) -> str:
    """The engine's socket through its directory: a bind-mounted socket file keeps the socket the engine had
    when the hub started, which an engine restarted under live-restore (the hub running on) no longer
    listens on; the directory shows the new one. Docker Desktop's socket is a link into its own VM's
    shares, so there the file is mounted (Docker Desktop's engine is left alone, live-restore included)."""
    if target.profile.docker_desktop:
        return f"/var/run/docker.sock:{ENGINE_SOCKET}"
    return f"/var/run:{ENGINE_SOCKET.rsplit('/', 1)[0]}:ro"


def _network_endpoint(target: Target, mac: str) -> dict:
    """The service's place on the shared network, with the fixed MAC address by which the bridge's firewall knows
    the hub and the proxy (none on a cluster's overlay network, where that firewall does not apply).

    Docker 25 (API 1.44) and newer take a MAC address per network endpoint: older releases of Compose (Debian
    13's 2.26) drop a container-wide one there. Older engines refuse a per-endpoint one, so they get the
    container-wide key."""
    network = target.settings.network_name
    if target.cluster:
        return {"networks": [network]}
    if target.engine_major >= 25:
        return {"networks": {network: {"mac_address": mac}}}
    return {"mac_address": mac, "networks": [network]}


def compose_project(target: Target, images: Images, certificate: Certificate, secrets: HubSecrets) -> dict:
    """The Compose project as data; written out by a YAML emitter, so no value can add structure."""
    s = target.settings
    locked_down = {"cap_drop": ["ALL"], "cap_add": ENTRY_CAPABILITIES, "security_opt": ["no-new-privileges"]}
    hub = {
        "image": images.hub,
        "container_name": "jupyterhub",
        # The firewall knows the hub by its MAC address: it may reach user servers, and nobody else may.
        **_network_endpoint(target, HUB_MAC),
        # Not "unless-stopped": Docker 20.10 leaves such containers down after its engine was killed.
        "restart": "always",
        **locked_down,
        # The hub's API port is below 1024 (see the firewall); its unprivileged user may bind it.
        "sysctls": {"net.ipv4.ip_unprivileged_port_start": 0},
        # What belongs to one run of the hub lives on a tmpfs that every start gets empty.
        "tmpfs": ["/run/jupyterhub"],
        "working_dir": "/run/jupyterhub",
        "environment": {"JUPYTERHUB_GPU_SECRETS": "/run/jupyterhub/secrets", "DOCKER_HOST": f"unix://{ENGINE_SOCKET}"},
        "volumes": [
            _engine_socket_mount(target),
            "hub-data:/srv/jupyterhub",
            "./jupyterhub_config.py:/etc/jupyterhub/jupyterhub_config.py:ro",
            "./hub.json:/etc/jupyterhub/hub.json:ro",
        ],
        "secrets": sorted(secrets.paths),
        "depends_on": {"proxy": {"condition": "service_healthy"}},
        "healthcheck": {
            "test": ["CMD", "python3", "-c", "import urllib.request; "
                     f"urllib.request.urlopen('http://127.0.0.1:{HUB_API_PORT}/hub/health', timeout=5)"],
            "interval": "5s", "timeout": "6s", "retries": 3, "start_period": "120s",
        },
    }
    proxy_command = ["--ip", "0.0.0.0", "--port", "8443", "--api-ip", "0.0.0.0", "--api-port", "8001",
                     "--default-target", f"http://jupyterhub:{HUB_API_PORT}",
                     "--error-target", f"http://jupyterhub:{HUB_API_PORT}/hub/error", "--ssl-ciphers", TLS12_CIPHERS]
    if target.user_domain:
        # Routes by the request's host too: each user's server answers on its own subdomain only.
        proxy_command.append("--host-routing")
    ports = [f"{s.https_port}:8443"]
    if s.http_port:
        proxy_command += ["--redirect-port", "8080", "--redirect-to", str(s.https_port)]
        ports.append(f"{s.http_port}:8080")
    proxy = {
        "image": images.proxy,
        "container_name": PROXY_CONTAINER,
        # The internet-facing process: no Docker socket, no database, no CA; its certificate, key and token only.
        **_network_endpoint(target, PROXY_MAC),
        "restart": "always",
        **locked_down,
        "ports": ports,
        # Where its entry point hands it the key and token: memory only, never the container's writable layer.
        "tmpfs": ["/run/proxy"],
        "volumes": [f"{certificate.directory}/server.crt:/etc/jupyterhub-proxy/tls/server.crt:ro",
                    f"{certificate.directory}/server.key:/etc/jupyterhub-proxy/tls/server.key:ro"],
        "secrets": ["proxy_token"],
        "command": proxy_command,
        "healthcheck": {
            "test": ["CMD", "node", "-e", "require('net').connect(8443, '127.0.0.1', () => process.exit(0))"
                     ".on('error', () => process.exit(1))"],
            "interval": "5s", "timeout": "6s", "retries": 3, "start_period": "30s",
        },
    }
    services = {"proxy": proxy, "jupyterhub": hub, **gpu_sampler.compose_services(target, images)}
    return {
        "name": s.compose_project,
        "services": services,
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
    # Before execution (pyinfra without -y shows what would change) earlier operations have no results yet.
    changed = inputs_changed() if context.state.is_executing else True
    if not changed and not unhealthy:
        host.noop(f"compose project in {project_directory} is up: " + ", ".join(f"{k} {v}" for k, v in state.items()))
        return
    # --wait returns once the hub's health check passes: the deploy ends with a hub that answers.
    yield StringCommand(
        "docker", "compose", "--project-directory", QuoteString(project_directory),
        "up", "--detach", "--wait", "--wait-timeout", str(timeout), "--force-recreate", "--remove-orphans",
    )


@operation(is_idempotent=True)
def id_reserved(account: str, uid: int):
    """A system account and group of that name hold ``uid`` on the host: no package is given that id later, and
    what runs as it on the host is the hub's and the proxy's only (the preflight checked nobody else holds it)."""
    held = host.get_fact(AccountIds, account=account)
    if held == {"uid": uid, "gid": uid}:
        host.noop(f"the system account {account} holds id {uid}, the hub's and the proxy's")
        return
    name = QuoteString(account)
    if held["gid"] is None:
        yield StringCommand("groupadd", "--system", "--gid", str(uid), name)
    elif held["gid"] != uid:
        yield StringCommand("groupmod", "--gid", str(uid), name)
    if held["uid"] is None:
        yield StringCommand("useradd", "--system", "--uid", str(uid), "--gid", str(uid), "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name)
    else:
        yield StringCommand("usermod", "--uid", str(uid), "--gid", str(uid), name)


@deploy("Hub services")
def ensure_services(target: Target, images: Images, certificate: Certificate, secrets: HubSecrets) -> None:
    id_reserved(name=f"Id {target.settings.service_uid} reserved for the hub and the proxy",
                account=SERVICE_ACCOUNT, uid=target.settings.service_uid)
    project_dir = str(target.install_dir)
    heading = "# Written by the jupyterhub-gpu deploy; deploy again rather than edit.\n"
    # The install directory is there (the secrets role made it): no check of it per file and run.
    config = files.put(name="Hub configuration (static)", src=str(FILES / "jupyterhub_config.py"),
                       dest=f"{project_dir}/jupyterhub_config.py", mode="644", create_remote_dir=False)
    settings = files.put(
        name="Hub settings", dest=f"{project_dir}/hub.json", mode="644", create_remote_dir=False,
        src=io.StringIO(json.dumps(contract.dump(hub_settings(target, images)), indent=2, sort_keys=True) + "\n"),
    )
    compose = files.put(
        name="Compose project", dest=f"{project_dir}/compose.yaml", mode="644", create_remote_dir=False,
        src=_yaml(compose_project(target, images, certificate, secrets),
                  heading + "# `docker compose ps` and `docker compose logs -f jupyterhub` work here.\n"),
    )
    stack_up(
        name="Hub running and healthy",
        project_directory=project_dir,
        services=["proxy", "jupyterhub", *gpu_sampler.compose_services(target, images)],
        timeout=target.settings.hub_ready_timeout,
        inputs_changed=lambda: any_changed(config, settings, compose)() or secrets.changed() or certificate.changed(),
    )
