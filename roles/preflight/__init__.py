"""Checks that run before any change: every host's inventory data is valid, the host is one the deploy
supports, and what the settings ask of the host (GPUs, certificates, an identity provider) is there."""

from __future__ import annotations

import sys

from pyinfra import host, state

from gpudockerspawner.nvidia import named
from jupyterhub_gpu.cluster import Cluster, cluster_of
from jupyterhub_gpu.facts import (
    EffectiveUid,
    GPUInventory,
    HostProfile,
    IdHolders,
    Login,
    LoginUser,
    NvidiaGPUs,
    TargetProfile,
    port_holding,
)
from jupyterhub_gpu.settings import SERVICE_ACCOUNT, HubSettings, InventoryError, from_host_data
from jupyterhub_gpu.target import Target
from roles import tls
from roles.network import PROXY_CONTAINER
from roles.preflight import oidc, subdomains

SUPPORTED = {"debian": ("11", "12", "13"), "ubuntu": ("22.04", "24.04")}


def check() -> Target:
    """Return the validated target, or raise InventoryError naming what is wrong."""
    settings = from_host_data(host.name, host.data.dict())
    cluster = cluster_of(state.inventory, host.name, {active.name for active in state.activated_hosts})
    _check_cluster(host.name, settings, cluster)
    _check_root(host.name)
    profile: HostProfile = host.get_fact(TargetProfile)
    supported = SUPPORTED.get(profile.os_id)
    if supported is None or profile.os_version not in supported:
        allowed = ", ".join(f"{os} {' / '.join(versions)}" for os, versions in SUPPORTED.items())
        raise InventoryError.for_host(
            host.name,
            f"the host runs {profile.os_id or 'an unknown OS'} {profile.os_version}; supported are {allowed}")
    if cluster and settings.swarm_network_encrypted and profile.kernel_esp == "n":
        raise InventoryError.for_host(
            host.name, f"swarm_network_encrypted = True, but the kernel of {host.name} ({profile.os_id} "
            f"{profile.os_version}) is built without IPsec ESP (CONFIG_INET_ESP), which Docker's encrypted overlay "
            "network needs: use a kernel with it, or set swarm_network_encrypted: false, where the servers' traffic "
            "crosses only a network nobody else is on (it then travels in clear)")
    gpus: GPUInventory = host.get_fact(NvidiaGPUs) if settings.gpu_ids != "none" else GPUInventory()
    _check_gpus(host.name, settings, gpus)
    _check_gpu_kinds(host.name, settings, gpus, cluster)
    try:
        domain, one_origin_why = subdomains.user_domain(settings)
    except subdomains.CannotCover as error:
        raise InventoryError.for_host(host.name, str(error)) from None
    target = Target(settings=settings, profile=profile, gpus=gpus,
                    oauth_endpoints=_oauth_endpoints(host.name, settings),
                    cluster=cluster, user_domain=domain, one_origin_why=one_origin_why)
    if target.runs_hub:  # a cluster's GPU nodes serve no TLS and run no hub
        _check_ports(host.name, settings)
        _check_tls(host.name, target)
        _check_service_uid(host.name, settings)
    return target


def _check_cluster(host_name: str, settings: HubSettings, cluster: Cluster | None) -> None:
    made_elsewhere = [f"singleuser_image = {settings.singleuser_image!r}"] if settings.singleuser_image else []
    made_elsewhere += [f"image_profiles[{index}].image = {profile.image!r}"
                       for index, profile in enumerate(settings.image_profiles) if profile.image]
    if cluster and made_elsewhere:
        raise InventoryError.for_host(
            host_name, f"{'; '.join(made_elsewhere)}: in a cluster each server is fenced in on the overlay network by "
            "the entry point of the image the deploy builds, which an image made elsewhere lacks; give the profile "
            "`packages` (built on the standard image) instead, or leave the image out")
    node_local = [name for name, folder in settings.shared_folders.items() if not folder.get("path")]
    if cluster and node_local:
        raise InventoryError.for_host(
            host_name, f"shared_folders[{node_local[0]!r}] has no path: in a cluster a server may start on any GPU "
            "node, and a volume of its own would be a different, node-local folder on each; give it a `path` that "
            "every GPU node mounts (an NFS export mounted at the same place on each)")
    if cluster and settings.engine_live_restore and "engine_live_restore" in settings.model_fields_set:
        raise InventoryError.for_host(
            host_name, "engine_live_restore = True: Docker refuses swarm mode with live-restore, and this host is in a "
            "cluster (the inventory has a gpu_nodes group); remove the key, or set it false")


def _check_ports(host_name: str, settings: HubSettings) -> None:
    """The ports the hub publishes are free, or its own proxy's already (a redeploy): else Docker would refuse to
    start the proxy at the deploy's end, after the engine, the images and the secrets were changed."""
    for key, answers in (("https_port", "the hub answers"), ("http_port", "the redirect to HTTPS answers")):
        port = getattr(settings, key)
        if port is None:
            continue
        holding = port_holding(port)
        if holding.listening and PROXY_CONTAINER not in holding.containers:
            raise InventoryError.for_host(
                host_name, f"{key} = {port}: port {port} of the host is already taken ({holding.held_by()}), and "
                f"{answers} there; free it, or choose another {key}")


def _check_service_uid(host_name: str, settings: HubSettings) -> None:
    """The hub's and the proxy's id is nobody else's on the host: a process of that account could read their
    secrets through /proc. The deploy's own reservation of it (SERVICE_ACCOUNT) is theirs."""
    uid = settings.service_uid
    holders = host.get_fact(IdHolders, id_number=uid)
    others = [f"account {name!r}" for name in holders["users"] if name != SERVICE_ACCOUNT]
    others += [f"group {name!r}" for name in holders["groups"] if name != SERVICE_ACCOUNT]
    if others:
        raise InventoryError.for_host(
            host_name, f"service_uid = {uid}: the host's {' and '.join(others)} "
            f"{'hold' if len(others) > 1 else 'holds'} that id, and the hub and the proxy "
            "run as it (a process of that account could read their secrets); pick an id no account or group of "
            "the host has (`getent passwd <id>` and `getent group <id>` print nothing)")


def _check_root(host_name: str) -> None:
    """The deploy's commands run as root: the SSH user is root, or becomes root with sudo (pyinfra's ``_sudo``).
    Asked first as the SSH user, so that a sudo that would ask for a password nobody gave is never run."""
    login: Login = host.get_fact(LoginUser, _sudo=False, _su_user=None, _doas=False)
    if login.uid == 0:
        return
    user = login.user
    if not host.data.get("_sudo"):
        problem = (f"the deploy logs in as {user!r} (uid {login.uid}), who is not root, and the inventory does not set "
                   "_sudo: log in as root, or as a user with sudo rights and set _sudo: True (and _sudo_password "
                   "where sudo asks for a password)")
    elif not login.sudo:
        problem = f"_sudo = True, but {host_name} has no sudo command: install sudo (as root), or log in as root"
    elif not (login.sudo_without_password or host.data.get("_sudo_password") or sys.stdin.isatty()):
        # From a terminal, pyinfra asks for the password itself.
        problem = (f"_sudo = True: sudo asks {user!r} for a password and the inventory gives none: set "
                   f"_sudo_password (or run pyinfra from a terminal, where it asks), let {user!r} use sudo without a "
                   "password, or log in as root")
    elif host.get_fact(EffectiveUid, _ignore_errors=True) == 0:
        return
    else:
        problem = (f"_sudo = True: {user!r} could not become root with sudo (see sudo's words above): check "
                   f"_sudo_password, and that {user!r} may run any command with sudo (a file in /etc/sudoers.d/), "
                   "or log in as root")
    raise InventoryError.for_host(host_name, problem)


def _oauth_endpoints(host_name: str, settings: HubSettings) -> dict:
    if settings.authenticator != "oauth" or settings.oauth_provider != "generic":
        return {}
    given = {"authorize_url": settings.oauth_authorize_url, "token_url": settings.oauth_token_url,
             "userdata_url": settings.oauth_userdata_url}
    if all(given.values()):
        return given
    try:
        discovered = oidc.endpoints(settings.oauth_issuer_url, settings.build_extra_ca_certs)
    except oidc.DiscoveryError as error:
        raise InventoryError.for_host(host_name, f"oauth_issuer_url = {settings.oauth_issuer_url!r}: {error}") from None
    return {key: given[key] or discovered[key] for key in given}


def _check_tls(host_name: str, target: Target) -> None:
    problems = tls.problems_before_change(target)
    if problems:
        raise InventoryError.for_host(host_name, *problems)


def _check_gpu_kinds(host_name: str, settings: HubSettings, gpus: GPUInventory, cluster: Cluster | None) -> None:
    """Each kind a profile or a group's rule names is one the hub can hand out (nvidia-smi's names): else its servers
    could never start. In a cluster the hub host checks them against every GPU node's units (a node has only some)."""
    named = [(f"image_profiles: {profile.name!r}", kind) for profile in settings.image_profiles
             for kind in profile.gpu_kinds]
    named += [(f"gpu_groups[{group!r}]", kind) for group, rule in settings.gpu_groups.items()
              for kind in rule.get("gpu_kinds", [])]
    if not named or (cluster and not cluster.is_manager):
        return
    if cluster:
        here = sorted({gpu.kind for node in cluster.nodes
                       for gpu in state.inventory.get_host(node).get_fact(NvidiaGPUs).gpus})
        lacking = "none of the cluster's GPU nodes has; they have"
    else:
        here = sorted({gpu.kind for gpu in gpus.gpus})
        lacking = "the host does not have; it has"
    for where, kind in named:
        if kind not in here:
            raise InventoryError.for_host(
                host_name, f"{where} asks for gpu_kinds {kind!r}, which {lacking} "
                f"{', '.join(map(repr, here)) or 'no GPU'} (as nvidia-smi names them)")


def _check_gpus(host_name: str, settings: HubSettings, gpus: GPUInventory) -> None:
    wanted = settings.gpu_ids
    if wanted in ("auto", "none"):
        return
    if not gpus.gpus:
        found = f"nvidia-smi at {gpus.nvidia_smi} reports none ({gpus.error})" if gpus.nvidia_smi else "no nvidia-smi"
        raise InventoryError.for_host(
            host_name, f"gpu_ids = {wanted!r}: the host has no GPU ({found}); install the NVIDIA driver "
            "(on WSL2: the Windows driver), or set gpu_ids: auto or none")
    _, missing = named(wanted, list(gpus.gpus))
    if missing:
        listed = ", ".join(f"{gpu.index} ({gpu.uuid}, {gpu.label})" for gpu in gpus.gpus)
        raise InventoryError.for_host(
            host_name, f"gpu_ids = {wanted!r}: the host has no GPU {', '.join(missing)}; it has {listed}")
