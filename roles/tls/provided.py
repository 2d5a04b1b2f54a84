"""Checks of a provided certificate on the controller, before anything changes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def problems(cert_file: Path, key_file: Path, names: tuple[str, ...], addresses: tuple[str, ...]) -> list[str]:
    """What is wrong with a provided certificate and key for these names; empty when nothing is."""
    try:
        chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except ValueError as error:
        return [f"tls_cert_file = {str(cert_file)!r}: not a PEM certificate ({error})"]
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        return [f"tls_key_file = {str(key_file)!r}: not an unencrypted PEM private key ({error})"]
    leaf = chain[0]
    found = []
    if key.public_key().public_numbers() != leaf.public_key().public_numbers():
        found.append(f"tls_key_file = {str(key_file)!r}: does not match the certificate in {str(cert_file)!r}")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    uncovered = [name for name in names if not _covers(dns, name)]
    uncovered += [address for address in addresses if str(ipaddress.ip_address(address)) not in ips]
    if uncovered:
        found.append(
            f"tls_cert_file = {str(cert_file)!r}: does not cover {', '.join(uncovered)} "
            f"(it names {', '.join(dns + ips) or 'nothing'}); set hub_names/hub_addresses to what it covers"
        )
    return found


def _covers(dns_names: list[str], name: str) -> bool:
    if name in dns_names:
        return True
    parent = name.split(".", 1)[1] if "." in name else ""
    return f"*.{parent}" in dns_names
