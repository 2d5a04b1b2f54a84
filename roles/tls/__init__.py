"""Ensure the hub's TLS certificate: a local CA kept for good and a server certificate for the hub's names."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, files

from roles.preflight import Target


@dataclass(frozen=True)
class Certificate:
    cert: str
    key: str
    ca: str


def subject_alt_names(names, addresses) -> str:
    return ",".join([f"DNS:{name}" for name in names] + [f"IP:{address}" for address in addresses])


def _openssl_script(sans: str, common_name: str) -> str:
    return f"""set -e
umask 077
if [ ! -s ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \\
    -keyout ca.key -out ca.crt -subj "/CN=JupyterHub GPU local CA ($(cat /proc/sys/kernel/hostname))" \\
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
printf 'subjectAltName={sans}\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\nextendedKeyUsage=serverAuth\\n' > server.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key.new -out server.csr \\
  -subj "/CN={common_name}" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 825 -extfile server.ext \\
  -set_serial "0x$(od -An -tx1 -N16 /dev/urandom | tr -d ' \\n')" -out server.crt.new 2>/dev/null
chmod 644 ca.crt server.crt.new
mv server.key.new server.key && mv server.crt.new server.crt
rm -f server.csr server.ext
printf '%s\\n' '{sans}' > names
"""


@operation(is_idempotent=True)
def selfsigned_certificate(directory: str, names: list[str], addresses: list[str]):
    """A server certificate signed by a local CA, re-issued only when the names or addresses change."""
    sans = subject_alt_names(names, addresses)
    if host.get_fact(FileContents, path=f"{directory}/names") == [sans]:
        host.noop(f"certificate in {directory} already covers {sans}")
        return
    yield StringCommand(f"cd {directory} && sh -c {_quote(_openssl_script(sans, names[0]))}")


def _quote(script: str) -> str:
    return "'" + script.replace("'", "'\"'\"'") + "'"


@deploy("TLS certificate")
def ensure_certificate(target: Target) -> Certificate:
    if "openssl" not in host.get_fact(DebPackages):
        apt.update(name="Update apt lists for openssl", cache_time=3600)
        apt.packages(name="Install openssl", packages=["openssl"], no_recommends=True)
    directory = f"{target.install_dir}/tls"
    files.directory(name="TLS directory", path=directory, mode="755")
    selfsigned_certificate(
        name="Self-signed certificate", directory=directory,
        names=list(target.names), addresses=list(target.addresses),
    )
    return Certificate(cert=f"{directory}/server.crt", key=f"{directory}/server.key", ca=f"{directory}/ca.crt")
