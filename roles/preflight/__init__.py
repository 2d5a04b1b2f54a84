"""Checks that run before any change: every host's inventory data is valid, the host is one the deploy
supports, and what the settings ask of the host (GPUs, certificates, an identity provider) is there."""

from __future__ import annotations

from pyinfra import host, state

from jupyterhub_gpu.cluster import Cluster, cluster_of
from jupyterhub_gpu.facts import GPUInventory, HostProfile, NvidiaGPUs, TargetProfile
from jupyterhub_gpu.settings import HubSettings, InventoryError, from_host_data
from jupyterhub_gpu.target import Target
from roles import tls
from roles.preflight import oidc

SUPPORTED = {"debian": ("11", "12", "13"), "ubuntu": ("22.04", "24.04")}


def check() -> Target:
    """Return the validated target, or raise InventoryError naming what is wrong."""
    settings = from_host_data(host.name, host.data.dict())
    cluster = cluster_of(state.inventory, host.name, {active.name for active in state.activated_hosts})
    _check_cluster(host.name, settings, cluster)
    profile: HostProfile = host.get_fact(TargetProfile)
    supported = SUPPORTED.get(profile.os_id)
    if supported is None or profile.os_version not in supported:
        allowed = ", ".join(f"{os} {' / '.join(versions)}" for os, versions in SUPPORTED.items())
        raise InventoryError(
            f"host {host.name} runs {profile.os_id or 'an unknown OS'} {profile.os_version}; "
            f"supported are {allowed} (nothing was changed)"
        )
    gpus: GPUInventory = host.get_fact(NvidiaGPUs) if settings.gpu_ids != "none" else GPUInventory()
    _check_gpus(host.name, settings, gpus)
    target = Target(settings=settings, profile=profile, gpus=gpus, oauth_endpoints=_oauth_endpoints(host.name, settings),
                    cluster=cluster)
    if target.runs_hub:  # a cluster's GPU nodes serve no TLS
        _check_tls(host.name, target)
    return target


def _check_cluster(host_name: str, settings: HubSettings, cluster: Cluster | None) -> None:
    if cluster and settings.engine_live_restore and "engine_live_restore" in settings.model_fields_set:
        raise InventoryError(
            f"invalid inventory data for host {host_name} (nothing was changed):\n"
            "  engine_live_restore = True: Docker refuses swarm mode with live-restore, and this host is in a "
            "cluster (the inventory has a gpu_nodes group); remove the key, or set it false")


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
        raise InventoryError(f"invalid inventory data for host {host_name} (nothing was changed):\n"
                             f"  oauth_issuer_url = {settings.oauth_issuer_url!r}: {error}") from None
    return {key: given[key] or discovered[key] for key in given}


def _check_tls(host_name: str, target: Target) -> None:
    problems = tls.problems_before_change(target)
    if problems:
        raise InventoryError(
            f"invalid inventory data for host {host_name} (nothing was changed):\n" + "\n".join(f"  {p}" for p in problems)
        )


def _check_gpus(host_name: str, settings: HubSettings, gpus: GPUInventory) -> None:
    wanted = settings.gpu_ids
    if wanted in ("auto", "none"):
        return
    if not gpus.gpus:
        found = f"nvidia-smi at {gpus.nvidia_smi} reports none ({gpus.error})" if gpus.nvidia_smi else "no nvidia-smi"
        raise InventoryError(
            f"invalid inventory data for host {host_name} (nothing was changed):\n"
            f"  gpu_ids = {wanted!r}: the host has no GPU ({found}); install the NVIDIA driver "
            "(on WSL2: the Windows driver), or set gpu_ids: auto or none"
        )
    known = {gpu.index for gpu in gpus.gpus} | {gpu.uuid for gpu in gpus.gpus}
    missing = [gpu for gpu in wanted if gpu not in known]
    if missing:
        listed = ", ".join(f"{gpu.index} ({gpu.uuid}, {gpu.name})" for gpu in gpus.gpus)
        raise InventoryError(
            f"invalid inventory data for host {host_name} (nothing was changed):\n"
            f"  gpu_ids = {wanted!r}: the host has no GPU {', '.join(missing)}; it has {listed}"
        )
