"""The deploy's roles, one package per concern, and the order they run in once preflight has passed."""

from __future__ import annotations

from dataclasses import dataclass

from jupyterhub_gpu.target import Target
from roles import docker_engine, images, network, nvidia_toolkit, restore, secrets, services, tls, wsl


@dataclass
class Provisioned:
    """What the roles leave for the deploy's closing lines."""

    uptime: wsl.Uptime
    secrets: secrets.HubSecrets
    certificate: tls.Certificate


def provision(target: Target, restore_from: restore.Archive | None = None) -> Provisioned:
    """Every role after preflight, in order. The deploy and the tests that plan the whole deploy both call
    this, so that a role added here is covered by them too. With ``restore_from`` (a checked archive), its
    content is put back before the secrets, certificates and services, which then keep it."""
    docker_engine.ensure_engine(target)
    uptime = wsl.ensure_uptime(target)
    nvidia_toolkit.ensure_toolkit(target)
    network.ensure_network(target)
    built = images.ensure_images(target)
    nvidia_toolkit.verify_gpus(target, built.singleuser)
    if restore_from is not None:
        restore.ensure_restored(target, built, restore_from)
    hub_secrets = secrets.ensure_secrets(target)
    certificate = tls.ensure_certificate(target)
    services.ensure_services(target, built, certificate, hub_secrets)
    images.prune_unused(target, built)
    return Provisioned(uptime, hub_secrets, certificate)
