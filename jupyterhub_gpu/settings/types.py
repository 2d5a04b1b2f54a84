"""The value types of the settings: what each kind of value may look like, and the words that say so."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field

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
PIP_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?(==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!_-]+$")


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
DockerName = Annotated[str, AfterValidator(_pattern(DOCKER_NAME, "letters, digits, '_', '.', '-', starting with a "
                                                                  "letter or digit"))]
ImageRef = Annotated[str, AfterValidator(_pattern(IMAGE_REF, "a Docker image reference like "
                                                              "'quay.io/jupyter/base-notebook:2025-01-06'"))]
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
