"""The inventory settings of a JupyterHub GPU host: declared once, validated once.

Every key a user may put in an inventory's host or group data is a field of
``HubSettings`` with its type, default and help text. ``from_host_data`` is the one
place that turns pyinfra host data into settings, and the docs' settings reference is
generated from this model (``python -m jupyterhub_gpu.settings`` prints it).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal

# The spawner's own GPU id grammar, so that the deploy and the hub read ids alike.
from gpudockerspawner.pool import PoolError, parse_gpu_ids
from pyinfra.api.exceptions import PyinfraError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# Keys that belong to pyinfra itself or to its connectors, not to this deploy.
PYINFRA_KEY_PREFIXES = ("ssh_", "docker_", "winrm_", "local_", "chroot_", "_", "vagrant_", "terraform_")

DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
COMPOSE_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
JUPYTER_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Docker image references: [registry[:port]/]path[:tag][@digest], lower-case path.
IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
# http(s) URLs of a plain shape: a host, a port, a path of safe characters and no query; apt's literal
# $(ARCH) may stand in a repository URL, and nothing else of shell syntax anywhere.
HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]*)*")
APT_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/(?:[A-Za-z0-9._~%+-]|\$\(ARCH\))*)*")
# Where the deploy keeps its files: an absolute path of plain characters.
PATH = re.compile(r"(/[A-Za-z0-9._-]+)+")
# Where the install directory may not be: system configuration, root's home, Docker's own data, and what a boot
# empties or the kernel makes up.
FORBIDDEN_INSTALL_ROOTS = ("/etc", "/root", "/var/lib/docker", "/boot", "/dev", "/proc", "/run", "/sys", "/tmp")
# Docker's own networks, which user servers must never share with the host or each other.
DOCKER_OWN_NETWORKS = {"host", "bridge", "none", "default"}
# Settings whose plain http:// would let anyone on the way change what the host trusts or whom the hub believes.
TRUST_URLS = ("nvidia_key_url", "engine_repo_url", "acme_server", "oauth_issuer_url", "oauth_authorize_url",
              "oauth_token_url", "oauth_userdata_url", "oauth_gitlab_url")
SYSTEM_DIRS = {"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin",
               "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/local", "/var/lib"}
PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?(==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!_-]+$")


def _dns_name(value: str) -> str:
    value = value.lower().rstrip(".")
    if len(value) > 253 or not all(DNS_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValueError(f"{value!r} is not a valid DNS name (letters, digits and '-' in dot-separated labels)")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _pattern(regex: re.Pattern, allowed: str):
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not allowed: {allowed}")
        return value

    return check


def _absolute_path(value: str) -> str:
    value = value.rstrip("/") if value != "/" else value
    if not PATH.fullmatch(value) or {".", ".."} & set(value.split("/")):
        raise ValueError(f"{value!r} is not allowed: an absolute path of letters, digits, '.', '_', '-', "
                         "without '..'")
    if value in SYSTEM_DIRS:
        raise ValueError(f"{value!r} is not allowed: a directory of its own, like /opt/jupyterhub-gpu, not {value}")
    return value


def _pinned_requirement(value: str) -> str:
    if not PIP_REQUIREMENT.fullmatch(value):
        raise ValueError(f"{value!r} is not allowed: a pip requirement with a version, like 'jupyterlab==4.6.6'")
    return value


def _ldap_host(value: str) -> str:
    try:
        return _ip_address(value)
    except ValueError:
        return _dns_name(value)


DnsName = Annotated[str, AfterValidator(_dns_name)]
LdapHost = Annotated[str, AfterValidator(_ldap_host)]
# An LDAP distinguished name: attribute=value pairs; a template may hold {username} once.
LDAP_DN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*=[^,=\n{}]+(,[A-Za-z][A-Za-z0-9-]*=[^,=\n{}]+)*$")
LdapDn = Annotated[str, AfterValidator(_pattern(LDAP_DN, "an LDAP DN like 'ou=people,dc=example,dc=org'"))]


def _ldap_template(value: str) -> str:
    if value.count("{username}") != 1 or not LDAP_DN.fullmatch(value.replace("{username}", "user")):
        raise ValueError(f"{value!r} is not allowed: an LDAP DN with {{username}} once, "
                         "like 'uid={username},ou=people,dc=example,dc=org'")
    return value


LdapTemplate = Annotated[str, AfterValidator(_ldap_template)]
# Group names of identity providers: DNs, OIDC claim values, org:team; no control characters.
AllowedGroup = Annotated[str, AfterValidator(_pattern(re.compile(r"^[^\x00-\x1f\x7f]{1,256}$"),
                                                      "1 to 256 printable characters"))]
GroupName = Annotated[str, AfterValidator(_pattern(re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"),
                                                   "a JupyterHub group name: letters, digits, '.', '_', '-'"))]
VolumeOptionName = Annotated[str, AfterValidator(_pattern(re.compile(r"^[a-z][a-z0-9_.-]{0,63}$"),
                                                          "a volume driver option name: a-z, 0-9, '_', '.', '-'"))]
VolumeOptionValue = Annotated[str, AfterValidator(_pattern(re.compile(r"^[^\x00-\x1f\x7f]{0,1024}$"),
                                                           "up to 1024 printable characters"))]
EnvName = Annotated[str, AfterValidator(_pattern(re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"),
                                                 "an environment variable name"))]
WslName = Annotated[str, AfterValidator(_pattern(re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
                                                 "a WSL distribution name: letters, digits, '.', '_', '-'"))]
OAuthScope = Annotated[str, AfterValidator(_pattern(re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$"),
                                                    "an OAuth scope (printable ASCII, no spaces or quotes)"))]
IpAddress = Annotated[str, AfterValidator(_ip_address)]
DockerName = Annotated[str, AfterValidator(_pattern(DOCKER_NAME, "letters, digits, '_', '.', '-', starting with a letter or digit"))]
ImageRef = Annotated[str, AfterValidator(_pattern(IMAGE_REF, "a Docker image reference like 'quay.io/jupyter/base-notebook:2025-01-06'"))]
# The host's system account that holds service_uid, so that no package is given that id later.
SERVICE_ACCOUNT = "jupyterhub-gpu"
# The hub user whose throwaway servers bin/gpu-check starts: nobody logs in or signs up under this name.
GPU_CHECK_USER = "gpu-check"


def _not_reserved(name: str) -> str:
    if name == GPU_CHECK_USER:
        raise ValueError(f"{name!r} is reserved for bin/gpu-check's throwaway servers: nobody may log in under it")
    return name


Username = Annotated[str, AfterValidator(_pattern(JUPYTER_USERNAME, "lower-case letters, digits, '.', '_', '-'")),
                     AfterValidator(_not_reserved)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"not a regular expression ({error})") from None
    return value


Regex = Annotated[str, Field(max_length=256), AfterValidator(_regex)]
PinnedRequirement = Annotated[str, AfterValidator(_pinned_requirement)]
HttpUrl = Annotated[str, AfterValidator(_pattern(HTTP_URL, "an http:// or https:// URL of letters, digits and "
                                                         "'.~%+-_/' (no query, no shell syntax)"))]
AptUrl = Annotated[str, AfterValidator(_pattern(APT_URL, "an http:// or https:// URL of letters, digits and '.~%+-_/', "
                                                     "where apt's $(ARCH) may stand"))]


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ()._+-]{0,39}")


class ImageProfile(BaseModel):
    """One choice in the spawn form: an image, whether it holds a GPU, and what its servers may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_pattern(PROFILE_NAME, "1-40 letters, digits, spaces and '()._+-'"))] = \
        Field(description="What the spawn form shows.")
    gpu: bool = Field(default=False, description="Its servers hold a GPU; offered only to users who may have one, "
                      "on hosts with GPUs. Other profiles' servers see no GPU.")
    packages: list[PinnedRequirement] = Field(
        default_factory=list, description="Pinned pip packages added to the standard single-user image.")
    image: ImageRef | None = Field(default=None, description="An image to pull instead of building one.")
    cpu_limit: float | None = Field(default=None, gt=0, le=1024,
                                    description="CPUs its servers may use. Empty: `user_cpu_limit`.")
    mem_limit: str | None = Field(default=None, pattern=r"^[0-9]+[KMGT]?$",
                                  description="Memory its servers may use. Empty: `user_mem_limit`.")

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "profile"

    def __str__(self) -> str:
        extras = [f"{key}={value}" for key, value in self.model_dump(exclude_defaults=True).items() if key != "name"]
        return f"{self.name}" + (f" ({', '.join(extras)})" if extras else "")


# PyTorch from PyPI: its wheels bring the CUDA runtime libraries; the driver's libcuda comes from the host.
DEFAULT_PROFILES = [
    ImageProfile(name="Standard", cpu_limit=1, mem_limit="2G"),
    ImageProfile(name="GPU (CUDA)", gpu=True, packages=["torch==2.9.1"]),
]


class GpuGroupRule(BaseModel):
    """What one group's members get (``gpu_groups``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus_per_user: int | None = Field(default=None, ge=1, le=64,
                                      description="GPUs each member's GPU server gets. Empty: `gpus_per_user`.")
    max_gpus: int | None = Field(default=None, ge=1, le=4096,
                                 description="GPUs the group's members hold together at most. Empty: no cap.")


def trait(name: str) -> dict:
    """A setting's counterpart in the hub's configuration (``Class.trait``), set from the setting as it is where
    the setting's concern applies (see hub_traits): one declaration, and the hub's configuration needs no line."""
    return {"trait": name}


class Concern(BaseModel):
    """One concern's settings; HubSettings is all of them."""

    # The concern's heading in the settings reference.
    title: ClassVar[str] = ""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def applies(cls, settings: "HubSettings") -> bool:
        """Whether this concern's settings reach the hub's configuration for these settings."""
        return True


class AddressSettings(Concern):
    """Where people reach the hub: its names and ports, and whether each user's server has an origin of its own."""

    title: ClassVar[str] = "Addresses"

    hub_names: list[DnsName] = Field(
        default_factory=list,
        description="DNS names users reach the hub by; they become the TLS certificate's names. "
        "Empty: the host's own hostname and `localhost`.",
    )
    user_subdomains: bool | None = Field(
        default=None,
        description="Each user's server on a subdomain of the hub's first name (`https://<user>.<hub name>/`), "
        "an origin of its own, so that a page one user serves cannot act with another's login in a browser "
        "(JupyterHub's `subdomain_host`). Empty: on where it can work (the first of `hub_names` has a wildcard DNS "
        "record, or ends in `.localhost`, and the certificate covers `*.<name>`: `selfsigned`, `letsencrypt` with "
        "`dns-01`, or a `provided` one that does), and the deploy says why where it is off. `true`: on, refused where "
        "the certificate cannot cover it. `false`: one origin for the hub and every server.",
    )
    hub_addresses: list[IpAddress] = Field(
        default_factory=list,
        description="IP addresses put in the certificate besides the names. "
        "Empty: every IPv4 address of the host except Docker's bridges.",
    )
    https_port: int = Field(
        default=443, ge=1, le=65535, description="Port on the host where the hub answers over HTTPS."
    )
    http_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on the host where plain HTTP answers, only with a redirect to HTTPS (like `80`). Empty: none.",
    )
    hsts_max_age: int | None = Field(
        default=None,
        ge=0,
        le=63_072_000,
        description="`Strict-Transport-Security` max-age, in seconds, on the hub's and user servers' responses; 0 "
        "sends none. Empty: a year with `letsencrypt` and `provided`, none with `selfsigned` (browsers would keep "
        "refusing plain HTTP for a name whose local CA they may drop).",
    )


class TlsSettings(Concern):
    """The hub's certificate: self-signed by a local CA, from an ACME CA with certbot, or provided."""

    title: ClassVar[str] = "Certificates"

    tls_mode: Literal["selfsigned", "letsencrypt", "provided"] = Field(
        default="selfsigned",
        description="Where the hub's certificate comes from: `selfsigned` (a local CA on the host, for a desktop "
        "or a LAN), `letsencrypt` (certbot and any ACME server), or `provided` (`tls_cert_file`, `tls_key_file`).",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="For `provided`: the certificate (with its chain) on the controller, PEM."
    )
    tls_key_file: Path | None = Field(
        default=None, description="For `provided`: its private key on the controller, PEM; kept 0600 on the host."
    )
    acme_server: HttpUrl = Field(
        default="https://acme-v02.api.letsencrypt.org/directory",
        description="ACME directory for `letsencrypt`: Let's Encrypt production by default, "
        "`https://acme-staging-v02.api.letsencrypt.org/directory`, or a private ACME CA.",
    )
    acme_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Contact for the ACME account (expiry notices); required for `letsencrypt`.",
    )
    acme_challenge: Literal["http-01", "dns-01"] = Field(
        default="http-01",
        description="`http-01`: certbot answers on the host's port 80 (it must reach the host from the ACME "
        "server). `dns-01`: a TXT record through `acme_dns_plugin`, for hosts not reachable from outside.",
    )
    acme_dns_plugin: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+$",
        description="certbot DNS plugin for `dns-01`, like `cloudflare` or `route53` "
        "(Debian/Ubuntu package `python3-certbot-dns-<plugin>`).",
    )
    acme_dns_credentials: Path | None = Field(
        default=None,
        description="The DNS plugin's credentials file on the controller; kept 0600 on the host.",
    )
    acme_ca_bundle: Path | None = Field(
        default=None,
        description="PEM CA bundle that certbot trusts for `acme_server` (a private ACME CA's).",
    )
    allow_plain_http: bool = Field(
        default=False,
        description="Allow plain `http://` for the URLs whose answers decide what the host trusts or whom the hub "
        "believes (`nvidia_key_url`, `engine_repo_url`, `acme_server`, the `oauth_*` endpoints), for a mirror "
        "or a provider on a network you trust. Apt repositories themselves may be `http://`: they are signed.",
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


class ImageSettings(Concern):
    """The images: how they are built, from what, and which image profiles users pick from."""

    title: ClassVar[str] = "Images and profiles"

    image_build: Literal["controller", "target"] = Field(
        default="controller",
        description="Where the hub and single-user images are built: once on the controller's Docker engine and "
        "shipped to each host that lacks them (`docker save | zstd` over the deploy's connection), or on each host "
        "(`target`). A controller without a Docker engine makes each host build its own.",
    )
    base_image: ImageRef | None = Field(
        default=None,
        description="Image the hub and single-user images are built from. Empty: the host's own distribution "
        "and release (`debian:bookworm-slim`, `ubuntu:noble`, ...).",
    )
    base_image_fallback: Literal["debootstrap", "none"] = Field(
        default="debootstrap",
        description="What to do when `base_image` cannot be pulled: `debootstrap` builds it from the host's "
        "own distribution mirror and imports it (air-gapped sites); `none` stops with an error.",
    )
    debootstrap_mirror: HttpUrl | None = Field(
        default=None,
        description="Mirror for the debootstrap fallback. Empty: the first mirror in the host's apt sources.",
    )
    build_trust_host_ca: bool = Field(
        default=True,
        description="Image builds (and the images) trust the host's CA store, so a TLS-inspecting proxy "
        "does not break `pip install` inside them.",
    )
    build_extra_ca_certs: list[Path] = Field(
        default_factory=list,
        description="PEM files on the controller with more CA certificates for image builds and images.",
    )
    singleuser_image: ImageRef | None = Field(
        default=None,
        description="Image to pull for user servers (for example a CUDA notebook image). "
        "Empty: build one on the host from `base_image` with `singleuser_packages`.",
    )
    singleuser_packages: list[PinnedRequirement] = Field(
        default_factory=lambda: ["jupyterlab==4.6.6"],
        description="Pinned pip packages of the built single-user image, besides `jupyterhub` itself.",
    )
    image_profiles: list[ImageProfile] = Field(
        default_factory=lambda: list(DEFAULT_PROFILES),
        description="The spawn form's choices, in order: each a `name`, `gpu` (its servers hold a GPU), extra "
        "pinned `packages` on the standard image or an `image` to pull, and its own `cpu_limit` and `mem_limit`. "
        "GPU profiles are built and offered only where there are GPUs, to users who may have one; a GPU user's "
        "default is the first GPU profile, everyone else's the first other one. The default's GPU image is "
        "several GB (PyTorch).",
    )
    hub_packages: list[PinnedRequirement] = Field(
        default_factory=list,
        description="Pinned pip packages of the hub image, replacing the deploy's own pins "
        "(`roles/images/templates/hub-requirements.txt`), for a site that holds or moves its own versions; must pin "
        "`jupyterhub`, which the single-user image then matches. Changing the version upgrades the hub in place.",
    )
    keep_previous_images: int = Field(
        default=1,
        ge=0,
        le=20,
        description="Earlier hub, proxy, single-user and profile images kept after a deploy that replaced them, "
        "for a rollback; older ones that no container uses are removed.",
    )


class AccountSettings(Concern):
    """Who logs in, how, and what they may do: admins, the authenticator, allow rules, sudo, tokens."""

    title: ClassVar[str] = "Accounts and logins"

    admin_users: list[Username] = Field(
        default_factory=lambda: ["admin"],
        description="Hub admins. With the native authenticator the deploy creates each admin's account with a "
        "generated password, kept on the host in `<install_dir>/secrets/admin-password-<name>` (mode 0600); "
        "nobody can sign up under these names. Admins approve other users at `/hub/authorize`.",
    )
    authenticator: Literal["native", "ldap", "oauth", "shared-password", "dummy"] = Field(
        default="native",
        description="How people log in: `native` (accounts on the hub, sign-up approved by an admin), `ldap` "
        "(a directory), `oauth` (an OpenID Connect or OAuth provider, see `oauth_provider`). "
        "`shared-password` and `dummy` are for tests and need `insecure_test_mode: true`.",
    )
    insecure_test_mode: bool = Field(
        default=False,
        description="Allow the test-only authenticators (`shared-password`, `dummy`); the deploy's output and "
        "the hub's log say so loudly. Never on a hub that real people use.",
    )
    allowed_users: list[Username] = Field(
        default_factory=list,
        description="Users who may log in. With `ldap` and `oauth` an allow rule is required: this, "
        "`allowed_groups`, or `allow_all`. Not with `native`, where an admin's approval is the allow rule (listed "
        "names would skip it).",
    )
    allowed_groups: list[AllowedGroup] = Field(
        default_factory=list,
        description="Groups of the identity provider whose members may log in: LDAP group DNs, the OIDC "
        "provider's `oauth_groups_claim` values, GitHub organisations (`org` or `org:team`), GitLab groups, "
        "Azure AD group ids.",
    )
    allow_all: bool = Field(
        default=False,
        description="Let everyone whom `ldap` or `oauth` authenticates log in. Chosen on purpose, never by "
        "default. (With `native` an admin's approval at `/hub/authorize` is the allow rule.)",
    )
    sudo_groups: list[GroupName] = Field(
        default_factory=list,
        description="Hub groups whose members get passwordless `sudo` inside their own container. Nobody else "
        "does, and root has no password anywhere.",
    )
    ops_token: bool = Field(
        default=False,
        description="Give monitoring scripts an API token of their own (`<install_dir>/secrets/ops_api_token`, the "
        "hub service `jupyterhub-gpu-ops`), which may read the hub, its users and servers and the GPU table, and "
        "change nothing.",
    )
    metrics_token: bool = Field(
        default=False,
        description="Give a Prometheus scraper a token of its own (`<install_dir>/secrets/metrics_api_token`, the "
        "hub service `jupyterhub-gpu-metrics`) that may read `/hub/metrics` and nothing else.",
    )


class NativeSettings(Concern):
    """`authenticator: native`: accounts that live in the hub."""

    title: ClassVar[str] = "Native accounts"

    @classmethod
    def applies(cls, settings: "HubSettings") -> bool:
        return settings.authenticator == 'native'

    open_signup: bool = Field(
        default=False,
        description="`native`: let new users sign up and log in without an admin's approval.",
        json_schema_extra=trait("NativeAuthenticator.open_signup"),
    )
    native_minimum_password_length: int = Field(
        default=12, ge=8, le=128, description="`native`: shortest password accepted at sign-up and change.",
        json_schema_extra=trait("NativeAuthenticator.minimum_password_length"),
    )
    native_check_common_password: bool = Field(
        default=True, description="`native`: refuse the 10,000 most common passwords.",
        json_schema_extra=trait("NativeAuthenticator.check_common_password"),
    )
    native_allowed_failed_logins: int = Field(
        default=5,
        ge=0,
        le=100,
        description="`native`: failed logins for one name from one address before each further try from there "
        "waits, 1 s after the next failure and twice as long after each one more, up to "
        "`native_seconds_before_next_try`; the right password always gets in once the wait is over. The address is "
        "the client's own (through the proxy, the one it saw), never a header the client sent. 0 never throttles.",
        json_schema_extra=trait("NativeAuthenticator.allowed_failed_logins"),
    )
    native_seconds_before_next_try: int = Field(
        default=600, ge=1, le=86400,
        description="`native`: the longest wait between tries for one name from one address after failed logins.",
        json_schema_extra=trait("NativeAuthenticator.seconds_before_next_try"),
    )
    native_failed_logins_per_hour: int = Field(
        default=60, ge=0, le=100000,
        description="`native`: failed logins one name may have in an hour from all addresses together; past that, "
        "addresses it never logged in from wait until the hour's count falls below it (at most an hour), while "
        "those it logged in from in the last 30 days do not. 0: no such ceiling.",
        json_schema_extra=trait("DeployedNativeAuthenticator.failed_logins_per_hour"),
    )


class LdapSettings(Concern):
    """`authenticator: ldap`: a directory."""

    title: ClassVar[str] = "LDAP"

    @classmethod
    def applies(cls, settings: "HubSettings") -> bool:
        return settings.authenticator == 'ldap'

    ldap_server_address: LdapHost | None = Field(
        default=None, description="`ldap`: the directory server's DNS name or IP address.",
        json_schema_extra=trait("LDAPAuthenticator.server_address"),
    )
    ldap_server_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`ldap`: its port. Empty: 636 with `ldap_tls: on_connect`, else 389.",
        json_schema_extra=trait("LDAPAuthenticator.server_port"),
    )
    ldap_tls: Literal["on_connect", "before_bind", "insecure"] = Field(
        default="on_connect",
        description="`ldap`: TLS from the start (`on_connect`, ldaps), STARTTLS before sending the password "
        "(`before_bind`), or none (`insecure`: passwords cross the network in the clear).",
        json_schema_extra=trait("LDAPAuthenticator.tls_strategy"),
    )
    ldap_ca_file: Path | None = Field(
        default=None,
        description="`ldap`: PEM CA certificate(s) on the controller that sign the server's certificate. "
        "Empty: the CAs the hub image trusts.",
    )
    ldap_bind_dn_template: list[LdapTemplate] = Field(
        default_factory=list,
        description="`ldap`: DNs to bind as, with `{username}` for the login name, like "
        "`uid={username},ou=people,dc=example,dc=org`. Either this or `ldap_user_search_base`.",
        json_schema_extra=trait("LDAPAuthenticator.bind_dn_template"),
    )
    ldap_user_search_base: LdapDn | None = Field(
        default=None,
        description="`ldap`: where to look users up by `ldap_user_attribute` (with `ldap_search_user`) when "
        "their DN cannot be made from a template.",
        json_schema_extra=trait("LDAPAuthenticator.user_search_base"),
    )
    ldap_user_attribute: str = Field(
        default="uid",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$",
        description="`ldap`: the attribute that holds the login name.",
        json_schema_extra=trait("LDAPAuthenticator.user_attribute"),
    )
    ldap_valid_username_regex: Regex | None = Field(
        default=None,
        description="`ldap`: a regular expression every login name must match before the directory is asked, like "
        "`^[a-z][a-z0-9]{2,15}$`. Empty: ldapauthenticator's own (`^[a-z][.a-z0-9_-]*$`).",
        json_schema_extra=trait("LDAPAuthenticator.valid_username_regex"),
    )
    ldap_search_user: LdapDn | None = Field(
        default=None, description="`ldap`: DN the hub binds as to look users up.",
        json_schema_extra=trait("LDAPAuthenticator.lookup_dn_search_user"),
    )
    ldap_search_password_file: Path | None = Field(
        default=None,
        description="`ldap`: file on the controller with `ldap_search_user`'s password; kept 0600 on the host.",
    )


class OAuthSettings(Concern):
    """`authenticator: oauth`: an OpenID Connect or OAuth provider."""

    title: ClassVar[str] = "OAuth and OpenID Connect"

    @classmethod
    def applies(cls, settings: "HubSettings") -> bool:
        return settings.authenticator == 'oauth'

    oauth_provider: Literal["generic", "github", "gitlab", "azuread"] = Field(
        default="generic",
        description="`oauth`: `generic` (any OpenID Connect provider: Keycloak, Authentik, Okta, ...), "
        "`github`, `gitlab` or `azuread` (Microsoft Entra ID).",
    )
    oauth_client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._~:@/+-]{1,256}$",
        description="`oauth`: the client id the provider gave the hub.",
        json_schema_extra=trait("OAuthenticator.client_id"),
    )
    oauth_client_secret_file: Path | None = Field(
        default=None,
        description="`oauth`: file on the controller holding the client secret; kept 0600 on the host, never printed.",
    )
    oauth_client_secret_env: EnvName | None = Field(
        default=None,
        description="`oauth`: or the environment variable on the controller that holds it.",
    )
    oauth_issuer_url: HttpUrl | None = Field(
        default=None,
        description="`oauth` `generic`: the OpenID issuer; the deploy reads its "
        "`/.well-known/openid-configuration` on the controller for the three endpoints below.",
    )
    oauth_authorize_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: authorization endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_token_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: token endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_userdata_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: userinfo endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_scopes: list[OAuthScope] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="`oauth` `generic`: scopes to ask for.",
    )
    oauth_username_claim: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="`oauth` `generic` and `azuread`: the claim that becomes the hub user name; it must be unique and "
        "never handed to someone else. Empty: `preferred_username` for `generic`; `oid` for `azuread` (the "
        "user's object id: oauthenticator's default, the display name `name`, is not unique). `github` uses the "
        "login, `gitlab` the username, both unique.",
    )
    oauth_groups_claim: str = Field(
        default="groups",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="`oauth` `generic`: the claim that lists a user's groups, for `allowed_groups`.",
    )
    oauth_callback_url: HttpUrl | None = Field(
        default=None,
        description="`oauth`: the redirect URL registered with the provider. Empty: "
        "`https://<first hub name>[:https_port]/hub/oauth_callback`.",
    )
    oauth_azuread_tenant_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,128}$",
        description="`oauth` `azuread`: the directory (tenant) id.",
        json_schema_extra=trait("AzureAdOAuthenticator.tenant_id"),
    )
    oauth_gitlab_url: HttpUrl | None = Field(
        default=None, description="`oauth` `gitlab`: a self-hosted GitLab's URL. Empty: gitlab.com.",
        json_schema_extra=trait("GitLabOAuthenticator.gitlab_url"),
    )


class GpuSettings(Concern):
    """The GPUs: which ones, how they are shared, and NVIDIA's Container Toolkit."""

    title: ClassVar[str] = "GPUs"

    gpu_ids: Literal["auto", "none"] | list[str] = Field(
        default="auto",
        description="GPUs handed to user containers: `auto` (every GPU the host's nvidia-smi reports; none "
        "found means CPU-only), `none`, or device indexes or UUIDs (`GPU-...`, `MIG-...`) that must exist "
        "on the host; `\"0,1,2\"` and the legacy `\"012\"` are read too.",
    )
    gpus_per_user: int = Field(default=1, ge=1, le=64, description="GPUs each GPU container gets.", json_schema_extra=trait("GPUDockerSpawner.gpus_per_user"))
    users_per_gpu: int = Field(
        default=1, ge=1, le=64, description="Containers that may share one GPU; 1 is exclusive.",
        json_schema_extra=trait("GPUDockerSpawner.users_per_gpu"),
    )
    gpu_on_exhausted: Literal["refuse", "cpu", "wait"] = Field(
        default="refuse",
        description="When no GPU is free for a user (every GPU is taken, or their groups hold all that "
        "`gpu_groups` allows): `refuse` the spawn with a message, start a CPU-only server (`cpu`), or `wait` in "
        "line for the next GPU released, first come first served, the spawn page showing one's place. The line is "
        "not kept over a hub restart: those waiting start again.",
        json_schema_extra=trait("GPUDockerSpawner.on_exhausted"),
    )
    gpu_wait_timeout: int = Field(
        default=1800, ge=30, le=7 * 86400,
        description="`wait`: seconds a spawn waits in line before it ends with a message.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_wait_timeout"),
    )
    gpu_groups: dict[GroupName, GpuGroupRule] = Field(
        default_factory=dict,
        description="Hub groups whose members may have a GPU (everyone else sees only CPU profiles). Empty: "
        "everyone may. A list of names, or rules by group: `{students: {gpus_per_user: 1, max_gpus: 2}, research: "
        "{gpus_per_user: 2}}` (each member's GPU server gets `gpus_per_user`; the group's members hold at most "
        "`max_gpus` together); someone in several groups gets the most generous rule with room. Members are "
        "managed as hub groups (the admin page, the REST API), or come from `oauth`'s provider.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_groups"),
    )

    @field_validator("gpu_groups", mode="before")
    @classmethod
    def _group_names_are_rules_too(cls, groups):
        # A list of names is the same as rules that leave everything to the defaults.
        if isinstance(groups, (list, tuple)):
            return {name: {} for name in groups}
        if not isinstance(groups, dict):
            raise ValueError("allowed: a list of hub group names, or rules by group like "
                             "{'students': {'gpus_per_user': 1, 'max_gpus': 2}}")
        return groups
    nvidia_repo_url: AptUrl = Field(
        default="https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)",
        description="NVIDIA Container Toolkit apt repository (a mirror for air-gapped hosts); "
        "`$(ARCH)` is apt's architecture.",
    )
    nvidia_key_url: HttpUrl = Field(
        default="https://nvidia.github.io/libnvidia-container/gpgkey",
        description="The key that signs `nvidia_repo_url`, dearmored into a keyring for its `signed-by`.",
    )
    nvidia_toolkit_version: str | None = Field(
        default=None,
        pattern=r"^[0-9][0-9A-Za-z.+~-]*$",
        description="Pin all four toolkit packages to this version, like `1.17.8-1`. Empty: the newest.",
    )
    nvidia_cdi: bool = Field(
        default=False,
        description="Also generate a CDI spec (`/etc/cdi/nvidia.yaml`) for runtimes that use CDI.",
    )


class LimitSettings(Concern):
    """What each user's server may use."""

    title: ClassVar[str] = "Limits"

    user_mem_limit: str | None = Field(
        default=None,
        pattern=r"^[0-9]+[KMGT]?$",
        description="Memory each user container may use, like `8G`, where its image profile sets none. Empty: half "
        "the host's memory.",
    )
    user_cpu_limit: float | None = Field(
        default=None,
        gt=0,
        le=1024,
        description="CPUs each user container may use, like `2` or `0.5`, where its image profile sets none. Empty: "
        "half the host's CPUs, at least one.",
    )
    user_pids_limit: int = Field(
        default=4096,
        ge=64,
        le=1_000_000,
        description="Processes and threads each user container may run (a fork bomb stops there).",
    )
    user_cpu_shares: int = Field(
        default=256,
        ge=2,
        le=262_144,
        description="CPU weight of each user container against the hub's and the proxy's (Docker's default, "
        "1024): when the host is busy, the hub still answers. 1024: equal weight.",
    )
    gpu_shm_size: str = Field(
        default="4G",
        pattern=r"^[0-9]+[KMGT]?$",
        description="`/dev/shm` of containers that hold GPUs: PyTorch's data loaders share batches through it, and "
        "Docker's 64 MB breaks them.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_shm_size"),
    )


class SpawnSettings(Concern):
    """How servers start, and when they stop."""

    title: ClassVar[str] = "Starting servers"

    spawns_at_once: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="User servers that start at the same time (from container to answering server); the others "
        "wait in line and their spawn page says how many are ahead. Empty: twice the host's CPUs; 0: no line.",
    )
    concurrent_spawn_limit: int = Field(
        default=200,
        ge=0,
        le=10_000,
        description="Spawns pending at once beyond which the hub answers 'too many users, try again' (JupyterHub's "
        "`concurrent_spawn_limit`; 0: no limit). Below it, spawns wait in line (`spawns_at_once`).",
        json_schema_extra=trait("JupyterHub.concurrent_spawn_limit"),
    )
    spawn_start_timeout: int = Field(
        default=900,
        ge=30,
        le=7200,
        description="Seconds a server may take to start, its wait in line included, before the hub gives up on it "
        "(JupyterHub's `start_timeout`).",
        json_schema_extra=trait("GPUDockerSpawner.start_timeout"),
    )
    spawn_http_timeout: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Seconds a started container's server may take to answer (JupyterHub's `http_timeout`).",
        json_schema_extra=trait("GPUDockerSpawner.http_timeout"),
    )
    shutdown_on_logout: bool = Field(
        default=False,
        description="Stop a user's servers when they log out (their files stay; a GPU goes back to the pool). "
        "Off: servers run on until the idle culler stops them.",
        json_schema_extra=trait("JupyterHub.shutdown_on_logout"),
    )


class CullingSettings(Concern):
    """Idle servers stopped, and how activity is read."""

    title: ClassVar[str] = "Idle servers"

    idle_timeout: int = Field(
        default=3600,
        ge=0,
        le=30 * 86400,
        description="Seconds a user server may sit idle (no browser, no kernel output) before the idle culler stops "
        "it; its files stay. 0: idle servers run on.",
    )
    max_age: int = Field(
        default=0,
        ge=0,
        le=365 * 86400,
        description="Seconds after which the idle culler stops any user server, busy or not. 0: no limit.",
    )
    gpu_idle_timeout: int = Field(
        default=1800,
        ge=0,
        le=30 * 86400,
        description="Seconds a server that holds a GPU may sit idle before it is stopped and its GPU goes back to "
        "the pool (a culler of its own, for GPU servers only). 0: only `idle_timeout` applies.",
    )
    gpu_max_age: int = Field(
        default=0,
        ge=0,
        le=365 * 86400,
        description="Seconds after which a server that holds a GPU is stopped, busy or not, so that nobody keeps a "
        "GPU for good. 0: only `max_age` applies.",
    )
    gpu_idle_utilization: int = Field(
        default=0,
        ge=0,
        le=100,
        description="GPU utilisation (percent) under which a GPU counts as idle. Above 0, GPU idleness is a signal of "
        "its own: a server whose GPUs all stayed under it for `gpu_idle_timeout` is stopped even while a browser tab "
        "keeps it active. 0: only Jupyter's activity (browser, kernels) counts.",
    )
    gpu_busy_is_activity: bool = Field(
        default=False,
        description="A server whose GPU was busy (at `gpu_idle_utilization` or more, 5 % where that is 0) within "
        "`gpu_idle_timeout` counts as active: a training run left overnight with no browser goes on, until "
        "`gpu_max_age` or `max_age`.",
    )
    gpu_sample_interval: int = Field(
        default=5,
        ge=1,
        le=300,
        description="Seconds between samples of each GPU's utilisation and memory (by a small container given the "
        "driver's utilities on each GPU host), for the GPU page, the Prometheus gauges and the GPU idleness signals.",
    )
    cull_every: int = Field(
        default=60, ge=5, le=3600, description="Seconds between the idle cullers' looks at the servers."
    )
    activity_interval: int = Field(
        default=300,
        ge=5,
        le=3600,
        description="Seconds between the hub's reads of user activity (from the proxy, and from each server, "
        "kernels included): an idle limit is only this precise.",
    )


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


# The concerns in this order make the settings reference (docs): one section each.
CONCERNS = (AddressSettings, TlsSettings, HostSettings, ImageSettings, AccountSettings, NativeSettings, LdapSettings, OAuthSettings, GpuSettings, LimitSettings, SpawnSettings, CullingSettings, WslSettings, ClusterSettings,)


class HubSettings(AddressSettings, TlsSettings, HostSettings, ImageSettings, AccountSettings, NativeSettings, LdapSettings, OAuthSettings, GpuSettings, LimitSettings, SpawnSettings, CullingSettings, WslSettings, ClusterSettings):
    """What one target host should run: every concern's settings, as flat keys (pyinfra's and Ansible's
    convention). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("image_profiles")
    @classmethod
    def _profiles_offer_something_to_everyone(cls, profiles: list[ImageProfile]) -> list[ImageProfile]:
        if not any(not profile.gpu for profile in profiles):
            raise ValueError("image_profiles needs at least one profile without gpu: true, for users (and hosts) "
                             "without a GPU")
        for field in ("name", "slug"):
            seen = [getattr(profile, field) for profile in profiles]
            twice = sorted({value for value in seen if seen.count(value) > 1})
            if twice:
                raise ValueError(f"image_profiles: more than one profile is named {', '.join(map(repr, twice))}")
        return profiles

    @model_validator(mode="after")
    def _gpu_group_caps_fit_a_server(self):
        for name, rule in self.gpu_groups.items():
            each = rule.gpus_per_user or self.gpus_per_user
            if rule.max_gpus is not None and rule.max_gpus < each:
                raise ValueError(f"gpu_groups[{name!r}]: max_gpus {rule.max_gpus} is less than the {each} GPUs each "
                                 "member's server gets, so no member could ever start one; allowed: max_gpus of at "
                                 f"least {each}, or no max_gpus")
        return self

    @field_validator("hub_packages")
    @classmethod
    def _hub_packages_pin_jupyterhub(cls, packages: list[str]) -> list[str]:
        if packages and sum(1 for p in packages if re.fullmatch(r"jupyterhub==\S+", p)) != 1:
            raise ValueError("hub_packages must pin jupyterhub exactly once, like 'jupyterhub==6.1.1' "
                             f"(given: {', '.join(packages)})")
        return packages

    @field_validator("gpu_ids", mode="before")
    @classmethod
    def _gpu_ids(cls, value):
        if value in ("auto", "all"):
            return "auto"
        if value == "none":
            return value
        try:
            return parse_gpu_ids(value)
        except PoolError as error:
            raise ValueError(str(error)) from None

    @field_validator("tls_cert_file", "tls_key_file", "acme_dns_credentials", "acme_ca_bundle", "ldap_ca_file",
                     "ldap_search_password_file", "oauth_client_secret_file")
    @classmethod
    def _controller_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file on the controller")
        return path

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

    @model_validator(mode="after")
    def _trust_comes_over_https(self):
        if self.allow_plain_http:
            return self
        plain = [f"{name} = {getattr(self, name)!r}" for name in TRUST_URLS
                 if (getattr(self, name) or "").startswith("http://")]
        if plain:
            raise ValueError(f"{'; '.join(plain)}: plain http:// lets anyone on the way change what it answers; "
                             "use https://, or set allow_plain_http: true for a network you trust")
        return self

    @model_validator(mode="after")
    def _tls_mode_has_what_it_needs(self):
        required = {
            "letsencrypt": ["acme_email"] + (["acme_dns_plugin", "acme_dns_credentials"]
                                             if self.acme_challenge == "dns-01" else []),
            "provided": ["tls_cert_file", "tls_key_file"],
        }.get(self.tls_mode, [])
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"tls_mode {self.tls_mode!r} needs {', '.join(missing)}")
        if self.tls_mode == "letsencrypt" and not self.hub_names:
            raise ValueError("tls_mode 'letsencrypt' needs hub_names: the public DNS names to certify")
        if self.tls_mode == "letsencrypt" and self.acme_challenge == "http-01" and 80 in (self.https_port, self.http_port):
            raise ValueError("certbot's HTTP-01 answers need port 80, which https_port or http_port takes; "
                             "use another port or acme_challenge: dns-01")
        return self

    @model_validator(mode="after")
    def _gpu_signals_have_a_limit(self):
        signals = [name for name in ("gpu_idle_utilization", "gpu_busy_is_activity") if getattr(self, name)]
        if signals and not self.gpu_idle_timeout:
            raise ValueError(f"{' and '.join(f'{name} = {getattr(self, name)!r}' for name in signals)}: GPU "
                             "idleness is judged over gpu_idle_timeout, which is 0; set gpu_idle_timeout "
                             "(seconds, for example 1800)")
        return self

    @field_validator("service_uid")
    @classmethod
    def _not_jovyan(cls, uid: int) -> int:
        if uid == 1000:
            raise ValueError("1000 is jovyan's, who runs every user's server")
        return uid

    @model_validator(mode="after")
    def _authenticator_has_what_it_needs(self):
        kind = self.authenticator
        if kind in ("shared-password", "dummy") and not self.insecure_test_mode:
            raise ValueError(f"authenticator {kind!r} lets anyone who knows one password in (or, for dummy, anyone "
                             "at all): it is for tests only and needs insecure_test_mode: true; "
                             "for people use native, ldap or oauth")
        if kind == "native" and self.allowed_users:
            raise ValueError(f"allowed_users = {self.allowed_users!r}: with authenticator 'native' these names skip an "
                             "admin's approval, so whoever signs up first under one of them gets in; leave it empty "
                             "(an admin approves each sign-up at /hub/authorize), or use ldap or oauth")
        if kind in ("ldap", "oauth") and not (self.allowed_users or self.allowed_groups or self.allow_all):
            raise ValueError(f"authenticator {kind!r} needs an allow rule: allowed_users, allowed_groups, "
                             "or allow_all: true (everyone the provider authenticates)")
        if kind == "ldap":
            self._ldap_has_what_it_needs()
        if kind == "oauth":
            self._oauth_has_what_it_needs()
        return self

    def _ldap_has_what_it_needs(self) -> None:
        if self.ldap_server_address is None:
            raise ValueError("authenticator 'ldap' needs ldap_server_address")
        searching = [self.ldap_user_search_base, self.ldap_search_user, self.ldap_search_password_file]
        if not self.ldap_bind_dn_template and not all(searching):
            raise ValueError("authenticator 'ldap' needs ldap_bind_dn_template, or ldap_user_search_base with "
                             "ldap_search_user and ldap_search_password_file")
        if any(searching) and not all(searching):
            raise ValueError("ldap_user_search_base, ldap_search_user and ldap_search_password_file go together")

    def _oauth_has_what_it_needs(self) -> None:
        missing = [name for name in ("oauth_client_id",) if getattr(self, name) is None]
        if (self.oauth_client_secret_file is None) == (self.oauth_client_secret_env is None):
            missing.append("exactly one of oauth_client_secret_file, oauth_client_secret_env")
        if self.oauth_provider == "generic":
            endpoints = [self.oauth_authorize_url, self.oauth_token_url, self.oauth_userdata_url]
            if self.oauth_issuer_url is None and not all(endpoints):
                missing.append("oauth_issuer_url (or oauth_authorize_url, oauth_token_url and oauth_userdata_url)")
        if self.oauth_provider == "azuread" and self.oauth_azuread_tenant_id is None:
            missing.append("oauth_azuread_tenant_id")
        if not self.hub_names and self.oauth_callback_url is None:
            missing.append("hub_names or oauth_callback_url (the address registered with the provider)")
        if missing:
            raise ValueError(f"authenticator 'oauth' ({self.oauth_provider}) needs {'; '.join(missing)}")
        if self.oauth_client_secret_env and not os.environ.get(self.oauth_client_secret_env):
            raise ValueError(f"oauth_client_secret_env = {self.oauth_client_secret_env!r}: that variable is "
                             "not set on the controller")

    @field_validator("build_extra_ca_certs")
    @classmethod
    def _pem_files_exist(cls, paths: list[Path]) -> list[Path]:
        for path in paths:
            if not path.is_file():
                raise ValueError(f"{str(path)!r} is not a file on the controller")
            content = path.read_bytes()
            if b"-----BEGIN CERTIFICATE-----" not in content:
                raise ValueError(f"{str(path)!r} holds no PEM certificate")
            if b"PRIVATE KEY-----" in content:
                raise ValueError(f"{str(path)!r} holds a private key: it would be copied into every image; "
                                 "give only the CA certificates")
        return paths


class InventoryError(PyinfraError, ValueError):
    """Inventory data that cannot be deployed; raised before any change. A pyinfra error, so that pyinfra's
    command line prints the message alone, with no traceback before it."""

    @classmethod
    def for_host(cls, host_name: str, *problems: str) -> InventoryError:
        """The refusal for ``host_name``, one problem (key, value, what is allowed) a line."""
        return cls(f"invalid inventory data for host {host_name} (nothing was changed):\n"
                   + "\n".join(f"  {problem}" for problem in problems))


def _is_own_key(key: str) -> bool:
    return not key.startswith(PYINFRA_KEY_PREFIXES)


# Settings whose values are made of models of their own: an unknown key there is one of theirs.
NESTED_MODELS = {"image_profiles": ImageProfile, "gpu_groups": GpuGroupRule}


def from_host_data(host_name: str, data: dict) -> HubSettings:
    """Validate one host's inventory data; the error names each bad key, its value and what is allowed."""
    own = {key: value for key, value in data.items() if _is_own_key(key)}
    try:
        return HubSettings(**own)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"]) or "?"
            top = str(item["loc"][0]) if item["loc"] else key
            if item["type"] == "extra_forbidden":
                nested = NESTED_MODELS.get(top) if len(item["loc"]) > 1 else None
                known = nested.model_fields if nested else HubSettings.model_fields
                close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
                hint = (f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(known)}" if nested
                        else "; see the settings reference, docs/reference/settings.md")
                problems.append(f"{key}: unknown {'key' if nested else 'setting'}{hint}")
                continue
            message = item["msg"].removeprefix("Value error, ")
            if not item["loc"]:  # a rule across settings
                problems.append(message)
                continue
            problems.append(f"{key} = {own.get(top)!r}: {message}")
        raise InventoryError.for_host(host_name, *problems) from None


def hub_traits(settings: HubSettings) -> dict:
    """``{"Class.trait": value}`` for every setting that names its trait (see ``trait``), where its concern applies
    and it has a value: what the hub's configuration sets as it is, in one loop."""
    values = settings.model_dump(mode="json")
    traits = {}
    for concern in CONCERNS:
        if not concern.applies(settings):
            continue
        for name, field in concern.model_fields.items():
            target = (field.json_schema_extra or {}).get("trait")
            if target and values[name] is not None:
                traits[target] = values[name]
    return traits


def settings_table() -> str:
    """The settings reference, generated from the model: a section per concern, in CONCERNS' order, each a table
    of its settings with their defaults and help text (the docs site's reference page includes it)."""
    sections = []
    for concern in CONCERNS:
        rows = [f"## {concern.title}", "", concern.__doc__, "", "| setting | default | what it does |",
                "| --- | --- | --- |"]
        for name, field in concern.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, list) and default and isinstance(default[0], BaseModel):
                shown = "; ".join(f"`{item}`" for item in default)
            else:
                shown = "empty" if default in (None, [], {}) else f"`{default}`"
            # A | in a cell, even in a code span, ends the cell unless escaped (image_build's "docker save | zstd").
            rows.append(f"| `{name}` | {shown.replace('|', chr(92) + '|')} | "
                        f"{field.description.replace('|', chr(92) + '|')} |")
        sections.append("\n".join(rows))
    return "\n\n".join(sections) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
