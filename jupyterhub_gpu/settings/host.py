"""What the deploy makes on a host, on a WSL2 host, and in a cluster."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from jupyterhub_gpu.settings.concern import Concern, trait
from jupyterhub_gpu.settings.types import (
    COMPOSE_PROJECT,
    DOCKER_OWN_NETWORKS,
    FORBIDDEN_INSTALL_ROOTS,
    AbsolutePath,
    DockerName,
    HttpUrl,
    IpAddress,
    VolumeOptionName,
    VolumeOptionValue,
    WslName,
)


class HostSettings(Concern):
    """What the deploy makes on the host: the Docker engine, the network, the install directory, the hub's process."""

    title: ClassVar[str] = "The host"

    network_name: DockerName = Field(
        default="jupyternet",
        description="User-defined Docker bridge network shared by the hub and user containers.",
        json_schema_extra=trait("GPUDockerSpawner.network_name"),
    )
    install_dir: AbsolutePath = Field(
        default="/opt/jupyterhub-gpu",
        description="Directory on the host with the Compose project, build contexts, secrets and certificates.",
    )
    compose_project: str = Field(
        default="jupyterhub-gpu",
        pattern=COMPOSE_PROJECT.pattern,
        description="Docker Compose project name; `docker compose -p NAME ps` shows the hub.",
    )
    engine_source: Literal["distro", "docker-ce"] = Field(
        default="distro",
        description="Where to install the Docker engine from when the host has no working one: "
        "the distribution's `docker.io` or Docker's `docker-ce` repository. "
        "An engine that already answers (Docker Desktop's included) is left alone.",
    )
    engine_repo_url: HttpUrl = Field(
        default="https://download.docker.com/linux",
        description="Base URL of Docker's apt repository (or a mirror of it), for `engine_source: docker-ce`.",
    )
    engine_live_restore: bool = Field(
        default=True,
        description="Docker's `live-restore`: the hub, the proxy and every user server (kernels, GPUs and all) keep "
        "running while the Docker engine is down: killed, restarted for the NVIDIA runtime, or upgraded. "
        "Set in `/etc/docker/daemon.json` (the engine reloads it, no restart). Docker Desktop's engine is left alone.",
    )
    service_uid: int = Field(
        default=990,
        ge=100,
        le=65533,
        description="The user and group id the hub and the proxy run as, inside their containers and so to the "
        "host's kernel: a host process with that id could read their secrets through `/proc`. The deploy refuses an "
        "id that a host account or group holds, and reserves it as the system account `jupyterhub-gpu`, so that no "
        "package gets it later. Not 1000, the servers' `jovyan`. Changing it re-owns the hub's database volume.",
    )
    hub_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="JupyterHub's log level.",
        json_schema_extra=trait("JupyterHub.log_level"),
    )
    hub_ready_timeout: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Seconds the deploy waits for the hub to answer after (re)starting it.",
    )

    @field_validator("network_name")
    @classmethod
    def _network_is_ours(cls, name: str) -> str:
        if name in DOCKER_OWN_NETWORKS:
            raise ValueError(f"{name!r} is Docker's own network: a network of its own, like 'jupyternet', keeps "
                             "user servers apart from everything else")
        return name

    @field_validator("install_dir")
    @classmethod
    def _install_dir_is_its_own(cls, path: str) -> str:
        for root in FORBIDDEN_INSTALL_ROOTS:
            if path == root or path.startswith(root + "/"):
                raise ValueError(f"{path!r} is under {root}: a directory of its own that nothing else manages "
                                 "and no boot empties, like /opt/jupyterhub-gpu")
        return path

    @field_validator("service_uid")
    @classmethod
    def _not_jovyan(cls, uid: int) -> int:
        if uid == 1000:
            raise ValueError("1000 is jovyan's, who runs every user's server")
        return uid


class WslSettings(Concern):
    """On a WSL2 host."""

    title: ClassVar[str] = "WSL2"

    wsl_keep_running: bool = Field(
        default=True,
        description="On a WSL2 host: a Windows scheduled task starts the distribution when Windows starts and keeps "
        "it running, so that closing the last terminal or restarting Windows does not stop the hub.",
    )
    wsl_distribution: WslName | None = Field(
        default=None,
        description="On a WSL2 host: the distribution's name as `wsl -l` shows it. Empty: `$WSL_DISTRO_NAME` of "
        "the deploy's session.",
    )
    wsl_vm_idle_timeout: int | None = Field(
        default=None,
        ge=1000,
        le=2_147_483_647,
        description="On a WSL2 host: milliseconds the WSL VM may idle before Windows shuts it down, set in the "
        "Windows user's `.wslconfig` (`[wsl2] vmIdleTimeout`). Empty: leave that file alone.",
    )


class ClusterSettings(Concern):
    """A cluster (an inventory with a `gpu_nodes` group): the swarm, its network, the users' homes."""

    title: ClassVar[str] = "A cluster"

    swarm_advertise_address: IpAddress | None = Field(
        default=None,
        description="In a cluster (an inventory with a `gpu_nodes` group), on the `hub` host: the address the Docker "
        "Swarm manager advertises to the GPU nodes (`docker swarm init --advertise-addr`). Empty: the host's first "
        "IPv4 address outside Docker's bridges.",
    )
    swarm_remove_absent_nodes: bool = Field(
        default=False,
        description="In a cluster, on the `hub` host: drain every swarm node that is no longer in the `gpu_nodes` "
        "group (its users' servers stop, and their spawn page says so) and remove it from the swarm. Off: such a "
        "node is named in a warning and left as it is.",
    )
    swarm_network_encrypted: bool = Field(
        default=True,
        description="In a cluster: the overlay network that carries the hub's and the proxy's traffic with the "
        "servers (login cookies, API tokens) between nodes is encrypted (IPsec, Docker's `encrypted` option; the "
        "nodes' kernels need ESP, which the deploy checks). Off: that traffic crosses the LAN in clear, for a LAN "
        "nobody else is on. Fixed when the network is made: changing it means making the network anew.",
    )
    home_volume_driver: DockerName | None = Field(
        default=None,
        description="In a cluster: a Docker volume driver that every GPU node reaches (like `local` with NFS "
        "options in `home_volume_driver_options`) for users' home volumes; their servers may then start on any "
        "node. Empty: a user's home lives on the node of their first server, and their later servers start there.",
    )
    home_volume_driver_options: dict[VolumeOptionName, VolumeOptionValue] = Field(
        default_factory=dict,
        description="Options of `home_volume_driver`, like `{type: nfs, o: \"addr=10.0.0.5,rw,nfsvers=4\", "
        "device: \":/export/homes/{username}\"}`; `{username}` becomes the user's name.",
    )
