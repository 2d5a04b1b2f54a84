"""The model every role reads: a target host as the deploy sees it, its validated settings and what it is
(facts), and what follows from both (its names, its GPU pool, its base image)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from gpudockerspawner.nvidia import named
from jupyterhub_gpu.cluster import Cluster
from jupyterhub_gpu.facts import GPUInventory, HostProfile
from jupyterhub_gpu.settings import HubSettings

# The Docker engine each release's docker.io package brings, where apt cannot say before it has read its lists.
DISTRO_ENGINES = {("debian", "11"): "20.10", ("debian", "12"): "20.10", ("debian", "13"): "26.1",
                  ("ubuntu", "22.04"): "24.0", ("ubuntu", "24.04"): "24.0"}
# The distribution's own archive, for the debootstrap fallback when apt sources name none.
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}


@dataclass(frozen=True)
class InstallLayout:
    """What a deploy keeps under ``install_dir`` on the host, named once: the Compose project and the hub's
    configuration at its root, and these directories."""

    root: PurePosixPath

    def _below(self, name: str) -> str:
        return str(self.root / name)

    @property
    def secrets(self) -> str:  # generated secrets, 0600 (the directory 0700)
        return self._below("secrets")

    @property
    def ca(self) -> str:  # the local CA's key and certificate, 0700, mounted by no container
        return self._below("ca")

    @property
    def tls(self) -> str:  # the server certificate and key the proxy mounts
        return self._below("tls")

    @property
    def acme(self) -> str:  # certbot's hooks and renewal script
        return self._below("acme")

    @property
    def bin(self) -> str:  # host-side tools (the backup tool, the GPU check)
        return self._below("bin")

    @property
    def build(self) -> str:  # image build contexts, where images are built on the host
        return self._below("build")

    @property
    def backups(self) -> str:  # bin/backup's archives
        return self._below("backups")

    @property
    def restored(self) -> str:  # which archives bin/restore put back
        return self._below("restored")


@dataclass(frozen=True)
class Target:
    """A validated host: its settings, what it is, and what follows from both."""

    settings: HubSettings
    profile: HostProfile
    gpus: GPUInventory = GPUInventory()
    # The OpenID provider's endpoints, as set or as its discovery document names them.
    oauth_endpoints: dict = field(default_factory=dict)
    # Its part in a cluster (an inventory with GPU nodes), or None for a hub of its own.
    cluster: Cluster | None = None
    # The domain under which each user's server has an origin of its own (``<user>.<domain>``), or None where
    # every server shares the hub's origin; ``one_origin_why`` then says why (see roles/preflight/subdomains.py).
    user_domain: str | None = None
    one_origin_why: str = ""

    @property
    def gpu_pool(self) -> tuple[str, ...]:
        """What user containers get here: UUIDs of whole GPUs and of MIG devices (never a GPU in MIG mode whole),
        which name a device the same way inside and outside. In a cluster only GPU nodes run user servers."""
        wanted = self.settings.gpu_ids
        if wanted == "none" or (self.cluster and not self.cluster.gpu_node):
            return ()
        if wanted == "auto":
            return tuple(gpu.uuid for gpu in self.gpus.gpus)
        chosen, missing = named(wanted, list(self.gpus.gpus))
        return tuple(chosen + missing)  # preflight has refused what names no unit of the host

    @property
    def runs_hub(self) -> bool:
        """A hub of its own, or a cluster's hub host."""
        return self.cluster is None or self.cluster.is_manager

    @property
    def hands_out_gpus(self) -> bool:
        """Whether servers of this host's hub, or on this GPU node, may get GPUs: from its own pool, or, on a
        cluster's hub, from the GPU nodes' (Swarm knows how many)."""
        return bool(self.gpu_pool) or bool(self.cluster and self.cluster.is_manager)

    @property
    def live_restore(self) -> bool:
        """Docker refuses swarm mode with live-restore: off on every host of a cluster."""
        return self.settings.engine_live_restore and self.cluster is None

    @property
    def offered_profiles(self) -> tuple:
        """The image profiles this host offers: GPU ones only where it has GPUs to hand out."""
        return tuple(profile for profile in self.settings.image_profiles if not profile.gpu or self.hands_out_gpus)

    @property
    def engine_major(self) -> int:
        """The major version of the Docker engine the hub runs on: the one that answers, else the one the deploy
        installs (Docker's own packages are 25 or newer; the distribution's are as apt or DISTRO_ENGINES say)."""
        profile = self.profile
        if profile.docker_server:
            version = profile.docker_server
        elif self.settings.engine_source == "docker-ce":
            return 25
        elif profile.docker_io_candidate and profile.docker_io_candidate != "(none)":
            version = profile.docker_io_candidate.split(":")[-1]
        else:
            version = DISTRO_ENGINES.get((profile.os_id, profile.os_version), "0")
        major = version.split(".")[0]
        return int(major) if major.isdigit() else 0

    @property
    def install_dir(self) -> PurePosixPath:
        return PurePosixPath(self.settings.install_dir)

    @property
    def layout(self) -> InstallLayout:
        return InstallLayout(self.install_dir)

    @property
    def names(self) -> tuple[str, ...]:
        if self.settings.hub_names:
            return tuple(self.settings.hub_names)
        return tuple(dict.fromkeys([self.profile.hostname.lower(), "localhost"]))

    @property
    def wildcard_names(self) -> tuple[str, ...]:
        """The certificate's name for the users' subdomains, where they have them."""
        return (f"*.{self.user_domain}",) if self.user_domain else ()

    @property
    def certificate_names(self) -> tuple[str, ...]:
        return self.names + self.wildcard_names

    @property
    def subdomain_host(self) -> str | None:
        """JupyterHub's ``subdomain_host``: the hub's URL without path, where users have subdomains."""
        return self.hub_url.rstrip("/") if self.user_domain else None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IP addresses the certificate names: as set; else the host's own, and the loopback address. On WSL2
        only the loopback address (Windows reaches the distribution at localhost): WSL gives the distribution a new
        address at each start, and a certificate made again for it is one browsers no longer trust."""
        if self.settings.hub_addresses:
            return tuple(self.settings.hub_addresses)
        if self.profile.wsl:
            return ("127.0.0.1",)
        return tuple(dict.fromkeys(self.profile.ipv4 + ("127.0.0.1",)))

    @property
    def hub_url(self) -> str:
        port = "" if self.settings.https_port == 443 else f":{self.settings.https_port}"
        return f"https://{self.names[0]}{port}/"

    @property
    def oauth_callback_url(self) -> str:
        return self.settings.oauth_callback_url or f"{self.hub_url}hub/oauth_callback"

    @property
    def hsts_max_age(self) -> int:
        """Seconds browsers keep to HTTPS for the hub (0: no Strict-Transport-Security header)."""
        if self.settings.hsts_max_age is not None:
            return self.settings.hsts_max_age
        return 0 if self.settings.tls_mode == "selfsigned" else 31_536_000

    @property
    def spawns_at_once(self) -> int:
        """Servers starting at once (0: no line): by default twice the host's CPUs, at least two."""
        if self.settings.spawns_at_once is not None:
            return self.settings.spawns_at_once
        return max(2, 2 * self.profile.cpus) if self.profile.cpus else 4

    @property
    def user_mem_limit(self) -> str | None:
        if self.settings.user_mem_limit:
            return self.settings.user_mem_limit
        return f"{self.profile.memory_mib // 2}M" if self.profile.memory_mib else None

    @property
    def user_cpu_limit(self) -> float | None:
        if self.settings.user_cpu_limit:
            return self.settings.user_cpu_limit
        return max(1.0, self.profile.cpus / 2) if self.profile.cpus else None

    @property
    def base_image(self) -> str:
        if self.settings.base_image:
            return self.settings.base_image
        suffix = "-slim" if self.profile.os_id == "debian" else ""
        return f"{self.profile.os_id}:{self.profile.os_codename}{suffix}"

    @property
    def base_tag(self) -> str:
        """Local name of the base image, whether it was pulled or built with debootstrap."""
        return "jupyterhub-gpu/base:" + self.base_image.replace("/", "-").replace(":", "-").replace("@", "-")

    @property
    def debootstrap_mirror(self) -> str:
        if self.settings.debootstrap_mirror:
            return self.settings.debootstrap_mirror
        own = [m for m in self.profile.apt_mirrors if self.profile.os_id in m]
        return (own or list(self.profile.apt_mirrors) or [DEFAULT_MIRRORS[self.profile.os_id]])[0]

    @property
    def debootstrap_components(self) -> str:
        # Ubuntu keeps configurable-http-proxy in universe.
        return "main,universe" if self.profile.os_id == "ubuntu" else "main"
