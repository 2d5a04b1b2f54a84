"""The deploy's roles, one package per concern, and the order they run in once preflight has passed."""

from __future__ import annotations

from dataclasses import dataclass

from jupyterhub_gpu.target import Target
from roles import (
    docker_engine,
    gpu_sampler,
    images,
    network,
    nvidia_toolkit,
    restore,
    secrets,
    services,
    shared_folders,
    swarm,
    tls,
    wsl,
)


@dataclass
class Provisioned:
    """What the roles leave for the deploy's closing lines."""

    uptime: wsl.Uptime
    # None on a cluster's GPU nodes, which run no hub.
    secrets: secrets.HubSecrets | None
    certificate: tls.Certificate | None


def provision(target: Target, restore_from: restore.Archive | None = None) -> Provisioned:
    """Every role after preflight, in order. The deploy and the tests that plan the whole deploy both call
    this, so that a role added here is covered by them too. With ``restore_from`` (a checked archive), its
    content is put back before the secrets, certificates and services, which then keep it."""
    docker_engine.ensure_engine(target)
    uptime = wsl.ensure_uptime(target)
    nvidia_toolkit.ensure_toolkit(target)
    network.ensure_cluster_firewall(target)
    swarm.ensure_swarm(target)
    if not target.runs_hub:
        # A GPU node runs user servers only: their images, and the check that its containers get GPUs.
        built = images.ensure_images(target, for_servers_only=True)
        nvidia_toolkit.verify_gpus(target, built.singleuser)
        images.prune_unused(target, built)
        return Provisioned(uptime, None, None)
    network.ensure_network(target)
    built = images.ensure_images(target)
    swarm.hold_network(target, built.singleuser)
    gpu_sampler.ensure_cluster_sampler(target, built)
    nvidia_toolkit.verify_gpus(target, built.singleuser)
    if restore_from is not None:
        restore.ensure_restored(target, built, restore_from)
    shared_folders.ensure_shared_folders(target, built.singleuser)
    hub_secrets = secrets.ensure_secrets(target)
    certificate = tls.ensure_certificate(target)
    services.ensure_services(target, built, certificate, hub_secrets)
    images.prune_unused(target, built)
    return Provisioned(uptime, hub_secrets, certificate)
