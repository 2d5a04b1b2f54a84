"""Validate a host's inventory data and learn what the host is, before anything changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pyinfra import host

from roles.facts import GPUInventory, HostProfile, NvidiaGPUs, PortListening, TargetProfile
from roles.settings import HubSettings, InventoryError, from_host_data
from roles.preflight import oidc, provided_certificate

SUPPORTED = {"debian": ("11", "12", "13"), "ubuntu": ("22.04", "24.04")}
# The distribution's own archive, for the debootstrap fallback when apt sources name none.
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}


@dataclass(frozen=True)
class Target:
    """A validated host: its settings, what it is, and what follows from both."""

    settings: HubSettings
    profile: HostProfile
    gpus: GPUInventory = GPUInventory()
    # The OpenID provider's endpoints, as set or as its discovery document names them.
    oauth_endpoints: dict = field(default_factory=dict)

    @property
    def gpu_pool(self) -> tuple[str, ...]:
        """The GPUs user containers get: UUIDs, which name a device the same way inside and outside."""
        wanted = self.settings.gpu_ids
        if wanted == "none":
            return ()
        if wanted == "auto":
            return tuple(gpu.uuid for gpu in self.gpus.gpus)
        by_id = {gpu.index: gpu.uuid for gpu in self.gpus.gpus} | {gpu.uuid: gpu.uuid for gpu in self.gpus.gpus}
        return tuple(by_id.get(gpu, gpu) for gpu in wanted)

    @property
    def install_dir(self) -> PurePosixPath:
        return PurePosixPath(self.settings.install_dir)

    @property
    def names(self) -> tuple[str, ...]:
        if self.settings.hub_names:
            return tuple(self.settings.hub_names)
        return tuple(dict.fromkeys([self.profile.hostname.lower(), "localhost"]))

    @property
    def addresses(self) -> tuple[str, ...]:
        if self.settings.hub_addresses:
            return tuple(self.settings.hub_addresses)
        return tuple(dict.fromkeys(self.profile.ipv4 + ("127.0.0.1",)))

    @property
    def hub_url(self) -> str:
        port = "" if self.settings.https_port == 443 else f":{self.settings.https_port}"
        return f"https://{self.names[0]}{port}/"

    @property
    def oauth_callback_url(self) -> str:
        return self.settings.oauth_callback_url or f"{self.hub_url}hub/oauth_callback"

    @property
    def certificate_addresses(self) -> tuple[str, ...]:
        """Addresses the certificate must name: a self-signed one names the host's; others what is set."""
        return self.addresses if self.settings.tls_mode == "selfsigned" else tuple(self.settings.hub_addresses)

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


def check() -> Target:
    """Return the validated target, or raise InventoryError naming what is wrong."""
    settings = from_host_data(host.name, host.data.dict())
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
    target = Target(settings=settings, profile=profile, gpus=gpus, oauth_endpoints=_oauth_endpoints(host.name, settings))
    _check_tls(host.name, target)
    return target


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
    settings = target.settings
    problems = []
    if settings.tls_mode == "provided":
        problems = provided_certificate.problems(settings.tls_cert_file, settings.tls_key_file, target.names,
                                     target.certificate_addresses)
    elif settings.tls_mode == "letsencrypt" and settings.acme_challenge == "http-01":
        if host.get_fact(PortListening, port=80):
            problems = ["acme_challenge = 'http-01': port 80 of the host is already taken, and certbot must answer "
                        "there; free it, or use acme_challenge: dns-01"]
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
