"""Where people reach the hub, and the hub's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from jupyterhub_gpu.settings.concern import Concern
from jupyterhub_gpu.settings.types import DnsName, HttpUrl, IpAddress


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
        "Empty: every IPv4 address of the host except Docker's bridges, and 127.0.0.1; on WSL2, 127.0.0.1 only "
        "(WSL gives the distribution a new address at each start).",
    )
    https_port: int = Field(
        default=443, ge=1, le=65535, description="Port on the host where the hub answers over HTTPS."
    )
    http_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on the host where plain HTTP answers, only with a redirect to HTTPS (like `80`). "
        "Empty: none.",
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
