"""Ensure the user-defined bridge network that the hub and the user containers share."""

from pyinfra.api import deploy
from pyinfra.operations import docker

from jupyterhub_gpu.target import Target


@deploy("Docker network")
def ensure_network(target: Target) -> None:
    docker.network(
        name=f"Bridge network {target.settings.network_name}",
        network=target.settings.network_name,
        driver="bridge",
    )
