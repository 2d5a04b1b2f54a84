"""Whether each user's server gets an origin of its own (a subdomain of the hub's name), decided on the
controller before any change: where the certificate can cover the subdomains and their names resolve."""

from __future__ import annotations

import secrets
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Timeout
from pathlib import Path

from cryptography import x509

from jupyterhub_gpu.settings import HubSettings

# How long the controller waits for its resolver to answer for a name under the hub's.
RESOLVE_SECONDS = 5


class CannotCover(ValueError):
    """The certificate cannot cover the users' subdomains: with ``user_subdomains: true``, a refusal."""


def user_domain(settings: HubSettings) -> tuple[str | None, str]:
    """The domain under which users' servers have subdomains, or None; and, where None (or on without a
    resolving wildcard), why, in words for the deploy's closing lines. Raises CannotCover where
    ``user_subdomains`` is true and the certificate cannot cover them."""
    wanted = settings.user_subdomains
    if wanted is False:
        return None, "user_subdomains is false"
    name = settings.hub_names[0] if settings.hub_names else None
    # A wildcard directly under a single label (*.localhost) is one that browsers refuse in a certificate.
    if name is None or "." not in name:
        why = (f"the hub is reached by a bare host name{f' ({name})' if name else ''} and addresses, under which no "
               "subdomain can be made: give hub_names a DNS name with a wildcard record, or one ending in .localhost")
        if wanted:
            raise CannotCover(f"user_subdomains = True, but {why}")
        return None, why
    uncovered = _cannot_cover(settings, name)
    if uncovered:
        if wanted:
            raise CannotCover(f"user_subdomains = True, but {uncovered}")
        return None, uncovered
    # Browsers send every name under localhost to the loopback address (a WSL2 desktop forwards it to the hub).
    if name.endswith(".localhost") or _resolves(f"jupyterhub-gpu-{secrets.token_hex(4)}.{name}"):
        return name, ""
    unresolved = (f"no wildcard DNS record: a name under {name} does not resolve here; add *.{name} pointing to the "
                  "hub")
    if wanted:
        # Perhaps only the users' network resolves it: their browsers will tell.
        return name, unresolved
    return None, unresolved


def _cannot_cover(settings: HubSettings, name: str) -> str:
    if settings.tls_mode == "letsencrypt" and settings.acme_challenge != "dns-01":
        return (f"a certificate for *.{name} needs acme_challenge: dns-01 (Let's Encrypt gives wildcards through "
                "DNS only)")
    if settings.tls_mode == "provided" and not _provided_covers(settings.tls_cert_file, f"*.{name}"):
        return f"tls_cert_file does not cover *.{name}"
    return ""


def _provided_covers(cert_file: Path, wildcard: str) -> bool:
    try:
        leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, OSError, x509.ExtensionNotFound):
        return False  # the TLS checks name what is wrong with it
    return wildcard in [dns.lower() for dns in san.get_values_for_type(x509.DNSName)]


def _resolves(name: str) -> bool:
    pool = ThreadPoolExecutor(1)
    try:
        return bool(pool.submit(socket.getaddrinfo, name, 443).result(timeout=RESOLVE_SECONDS))
    except (OSError, Timeout):
        return False
    finally:
        pool.shutdown(wait=False)
