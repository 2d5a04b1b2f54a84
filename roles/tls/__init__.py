"""Ensure the hub's TLS certificate: a local CA kept for good and a server certificate for the hub's names."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Command
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from roles.packages import ensure_installed
from roles.preflight import Target


@dataclass
class Certificate:
    """What the hub serves: ``directory`` holds server.crt and server.key (mounted into the hub); ``ca`` is
    the local CA that browsers import, in selfsigned mode only."""

    directory: str
    ca: str | None = None
    operations: list[OperationMeta] = field(default_factory=list)

    def changed(self) -> bool:
        return any(op.did_change() for op in self.operations)


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


CERT_NAME = "jupyterhub-gpu"
LIVE = f"/etc/letsencrypt/live/{CERT_NAME}"


class CertificateState(FactBase):
    """The names a certificate covers and whether it stays valid for ``days`` more, or None."""

    def command(self, path: str, days: int = 30) -> str:
        return (
            f"if [ -f {path} ]; then openssl x509 -in {path} -noout -ext subjectAltName 2>/dev/null | tail -n +2; "
            f"openssl x509 -in {path} -noout -checkend {days * 86400} >/dev/null && echo valid=yes || echo valid=no; fi"
        )

    def process(self, output) -> dict | None:
        names, valid = [], False
        for line in output:
            if line.startswith("valid="):
                valid = line == "valid=yes"
            else:
                names += [part.strip().split(":", 1)[1] for part in line.split(",") if ":" in part]
        return {"names": names, "valid": valid}


@operation(is_idempotent=True)
def acme_certificate(names: list[str], command: str):
    """Obtain a certificate with certbot unless one that covers ``names`` stays valid for 30 more days."""
    state = host.get_fact(CertificateState, path=f"{LIVE}/cert.pem")
    if state and state["valid"] and sorted(state["names"]) == sorted(names):
        host.noop(f"certificate {CERT_NAME} covers {', '.join(names)} and is valid for 30 more days")
        return
    yield StringCommand(command)


@operation(is_idempotent=True)
def cron_running():
    """Start cron where no systemd runs it (WSL without systemd, containers)."""
    if host.get_fact(Command, command="pgrep -x cron >/dev/null && echo running || echo stopped") == "running":
        host.noop("cron is running")
        return
    yield "/etc/init.d/cron start || setsid cron"


def _deploy_hook(tls_dir: str) -> str:
    return f"""#!/bin/sh
# certbot ran this after it obtained or renewed the hub's certificate: the hub serves the new one.
# Restarting the hub restarts its proxy; user servers keep running (cleanup_servers is off).
set -e
install -m 644 "$RENEWED_LINEAGE/fullchain.pem" {tls_dir}/server.crt
install -m 600 "$RENEWED_LINEAGE/privkey.pem" {tls_dir}/server.key
docker restart jupyterhub >/dev/null 2>&1 || true  # not there yet on the first deploy
"""


def _certbot_command(target: Target, acme_dir: str, ca_bundle: str | None) -> str:
    settings = target.settings
    parts = [f"REQUESTS_CA_BUNDLE={ca_bundle}"] if ca_bundle else []
    parts += ["certbot certonly --non-interactive --agree-tos", f"-m {settings.acme_email}",
              f"--server {settings.acme_server}", f"--cert-name {CERT_NAME}", "--force-renewal",
              f"--deploy-hook {acme_dir}/deploy-hook"]
    if settings.acme_challenge == "http-01":
        parts += ["--standalone", "--http-01-port 80"]
    else:
        plugin = settings.acme_dns_plugin
        parts += [f"--dns-{plugin}", f"--dns-{plugin}-credentials {acme_dir}/dns-credentials.ini"]
    parts += [f"-d {name}" for name in target.names]
    return " ".join(parts)


def _renew_script(ca_bundle: str | None) -> str:
    env = f"export REQUESTS_CA_BUNDLE={ca_bundle}\n" if ca_bundle else ""
    return f"#!/bin/sh\n# Renew the hub's certificate when due; certbot runs the deploy hook.\n{env}exec certbot renew -q \"$@\"\n"


def _letsencrypt(target: Target, tls_dir: str) -> list[OperationMeta]:
    settings = target.settings
    packages = ["certbot"]
    if settings.acme_challenge == "dns-01":
        packages.append(f"python3-certbot-dns-{settings.acme_dns_plugin}")
    if not target.profile.systemd:
        packages.append("cron")
    ensure_installed(packages, "certificates from an ACME server")
    acme_dir = f"{target.install_dir}/acme"
    files.directory(name="ACME directory", path=acme_dir, mode="700")
    ca_bundle = None
    if settings.acme_ca_bundle:
        ca_bundle = f"{acme_dir}/ca-bundle.pem"
        files.put(name="CA bundle of the ACME server", src=str(settings.acme_ca_bundle), dest=ca_bundle, mode="644")
    if settings.acme_challenge == "dns-01":
        files.put(name="DNS plugin credentials", src=str(settings.acme_dns_credentials),
                  dest=f"{acme_dir}/dns-credentials.ini", mode="600")
    files.put(name="certbot deploy hook", src=io.StringIO(_deploy_hook(tls_dir)), dest=f"{acme_dir}/deploy-hook",
              mode="755")
    obtained = acme_certificate(name=f"Certificate from {settings.acme_server}", names=list(target.names),
                                command=_certbot_command(target, acme_dir, ca_bundle))
    renew = f"{acme_dir}/renew"
    files.put(name="Renewal command", src=io.StringIO(_renew_script(ca_bundle)), dest=renew, mode="755")
    if target.profile.systemd:
        unit = files.put(name="Renewal service", dest="/etc/systemd/system/jupyterhub-gpu-renew.service", mode="644",
                         src=io.StringIO(f"[Unit]\nDescription=Renew the JupyterHub certificate\n\n"
                                         f"[Service]\nType=oneshot\nExecStart={renew}\n"))
        timer = files.put(name="Renewal timer", dest="/etc/systemd/system/jupyterhub-gpu-renew.timer", mode="644",
                          src=io.StringIO("[Unit]\nDescription=Renew the JupyterHub certificate twice a day\n\n"
                                          "[Timer]\nOnCalendar=*-*-* 00,12:00:00\nRandomizedDelaySec=3600\n"
                                          "Persistent=true\n\n[Install]\nWantedBy=timers.target\n"))
        systemd.daemon_reload(name="Reload systemd for the renewal timer", _if=any_changed(unit, timer))
        systemd.service(name="Renewal timer running", service="jupyterhub-gpu-renew.timer", running=True,
                        enabled=True)
    else:
        files.put(name="Renewal schedule (cron)", dest="/etc/cron.d/jupyterhub-gpu-renew", mode="644",
                  src=io.StringIO(f"# Renew the JupyterHub certificate twice a day.\n17 */12 * * * root {renew}\n"))
        cron_running(name="cron running")
    return [obtained]


@deploy("TLS certificate")
def ensure_certificate(target: Target) -> Certificate:
    ensure_installed(["openssl"], "certificate checks")
    directory = f"{target.install_dir}/tls"
    files.directory(name="TLS directory", path=directory, mode="755")
    settings = target.settings
    if settings.tls_mode == "selfsigned":
        issued = selfsigned_certificate(
            name="Self-signed certificate", directory=directory,
            names=list(target.names), addresses=list(target.addresses),
        )
        return Certificate(directory, ca=f"{directory}/ca.crt", operations=[issued])
    # Another mode writes server.crt now: forget what a self-signed one covered, so that going back
    # to selfsigned issues a fresh certificate.
    files.file(name="No self-signed certificate in use", path=f"{directory}/names", present=False)
    if settings.tls_mode == "provided":
        return Certificate(directory, operations=[
            files.put(name="Provided certificate", src=str(settings.tls_cert_file), dest=f"{directory}/server.crt",
                      mode="644"),
            files.put(name="Provided key", src=str(settings.tls_key_file), dest=f"{directory}/server.key", mode="600"),
        ])
    return Certificate(directory, operations=_letsencrypt(target, directory))
