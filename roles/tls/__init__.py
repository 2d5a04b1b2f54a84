"""Ensure the hub's TLS certificate: a local CA kept for good and a server certificate for the hub's names."""

from __future__ import annotations

import io
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Command
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from jupyterhub_gpu.apt import ensure_installed
from jupyterhub_gpu.facts import port_holding
from jupyterhub_gpu.remote import private_file
from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render
from roles.tls import provided

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Certificate:
    """What the hub serves: ``directory`` holds server.crt and server.key (mounted into the hub); ``ca`` is
    the local CA that browsers import, in selfsigned mode only."""

    directory: str
    ca: str | None = None
    operations: list[OperationMeta] = field(default_factory=list)
    # What a CA made anew by this deploy covers, where one was there before: the trust browsers gave the old one
    # is gone (a CA may vouch only for the names and addresses it was made for).
    ca_remade_for: str = ""

    def changed(self) -> bool:
        return any(op.did_change() for op in self.operations)


def subject_alt_names(names, addresses) -> str:
    return ",".join([f"DNS:{name}" for name in names] + [f"IP:{address}" for address in addresses])


def name_constraints(names, addresses) -> str:
    """What the local CA may sign: the hub's names (and names below them) and addresses, nothing else."""
    permitted = [f"permitted;DNS:{name}" for name in names]
    for address in addresses:
        network = ipaddress.ip_network(address)
        permitted.append(f"permitted;IP:{network.network_address}/{network.netmask}")
    return ",".join(permitted)


@operation(is_idempotent=True)
def selfsigned_certificate(directory: str, ca_directory: str, names: list[str], addresses: list[str],
                           wildcards: list[str] = ()):
    """A server certificate signed by a local CA that may sign only for the hub's names and addresses; both
    issued again only when those change. ``wildcards`` (like ``*.hub.example.org``, for the users' subdomains)
    are the certificate's too, and within what the CA may sign: turning them on or off keeps the CA."""
    ca_sans = subject_alt_names(names, addresses)
    sans = subject_alt_names([*names, *wildcards], addresses)
    if (host.get_fact(FileContents, path=f"{directory}/names") == [sans]
            and host.get_fact(FileContents, path=f"{ca_directory}/names") == [ca_sans]):
        host.noop(f"certificate in {directory} already covers {sans}")
        return
    script = render(TEMPLATES, "issue-selfsigned.sh.j2", sans=sans, ca_sans=ca_sans, common_name=names[0],
                    ca_dir=ca_directory, tls_dir=directory, constraints=name_constraints(names, addresses))
    yield StringCommand("sh", "-c", QuoteString(script))


CERT_NAME = "jupyterhub-gpu"
LIVE = f"/etc/letsencrypt/live/{CERT_NAME}"


class CertificateState(FactBase):
    """The names a certificate covers and whether it stays valid for ``days`` more, or None."""

    def command(self, path: str, days: int = 30) -> StringCommand:
        return StringCommand(
            "if [ -f", QuoteString(path), "]; then openssl x509 -in", QuoteString(path),
            "-noout -ext subjectAltName 2>/dev/null | tail -n +2; openssl x509 -in", QuoteString(path),
            f"-noout -checkend {days * 86400} >/dev/null && echo valid=yes || echo valid=no; fi",
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
def acme_certificate(names: list[str], command: StringCommand):
    """Obtain a certificate with certbot unless one that covers ``names`` stays valid for 30 more days."""
    state = host.get_fact(CertificateState, path=f"{LIVE}/cert.pem")
    if state and state["valid"] and sorted(state["names"]) == sorted(names):
        host.noop(f"certificate {CERT_NAME} covers {', '.join(names)} and is valid for 30 more days")
        return
    yield command


@operation(is_idempotent=True)
def cron_running():
    """Start cron where no systemd runs it (WSL without systemd, containers)."""
    if host.get_fact(Command, command="pgrep -x cron >/dev/null && echo running || echo stopped") == "running":
        host.noop("cron is running")
        return
    yield "/etc/init.d/cron start || setsid cron"


def certbot_command(target: Target, acme_dir: str, ca_bundle: str | None) -> StringCommand:
    settings = target.settings
    arguments = ["certonly", "--non-interactive", "--agree-tos", "-m", settings.acme_email,
                 "--server", settings.acme_server, "--cert-name", CERT_NAME, "--force-renewal",
                 "--deploy-hook", f"{acme_dir}/deploy-hook"]
    if settings.acme_challenge == "http-01":
        arguments += ["--standalone", "--http-01-port", "80"]
    else:
        plugin = settings.acme_dns_plugin
        arguments += [f"--dns-{plugin}", f"--dns-{plugin}-credentials", f"{acme_dir}/dns-credentials.ini"]
    for name in target.certificate_names:
        arguments += ["-d", name]
    environment = ["env", QuoteString(f"REQUESTS_CA_BUNDLE={ca_bundle}")] if ca_bundle else []
    return StringCommand(*environment, "certbot", *(QuoteString(argument) for argument in arguments))


def _letsencrypt(target: Target, tls_dir: str) -> list[OperationMeta]:
    settings = target.settings
    packages = ["certbot"]
    if settings.acme_challenge == "dns-01":
        packages.append(f"python3-certbot-dns-{settings.acme_dns_plugin}")
    if not target.profile.systemd:
        packages.append("cron")
    ensure_installed(packages, "certificates from an ACME server")
    acme_dir = target.layout.acme
    files.directory(name="ACME directory", path=acme_dir, mode="700")
    ca_bundle = None
    if settings.acme_ca_bundle:
        ca_bundle = f"{acme_dir}/ca-bundle.pem"
        files.put(name="CA bundle of the ACME server", src=str(settings.acme_ca_bundle), dest=ca_bundle, mode="644")
    if settings.acme_challenge == "dns-01":
        private_file(name="DNS plugin credentials", src=str(settings.acme_dns_credentials),
                     dest=f"{acme_dir}/dns-credentials.ini", mode="600")
    files.put(name="certbot deploy hook", src=io.StringIO(render(TEMPLATES, "deploy-hook.sh.j2", tls_dir=tls_dir)),
              dest=f"{acme_dir}/deploy-hook", mode="755")
    obtained = acme_certificate(name=f"Certificate from {settings.acme_server}", names=list(target.certificate_names),
                                command=certbot_command(target, acme_dir, ca_bundle))
    renew = f"{acme_dir}/renew"
    files.put(name="Renewal command", src=io.StringIO(render(TEMPLATES, "renew.sh.j2", ca_bundle=ca_bundle)),
              dest=renew, mode="755")
    if target.profile.systemd:
        unit = files.put(name="Renewal service", dest="/etc/systemd/system/jupyterhub-gpu-renew.service", mode="644",
                         src=io.StringIO(render(TEMPLATES, "jupyterhub-gpu-renew.service.j2", renew=renew)))
        timer = files.put(name="Renewal timer", dest="/etc/systemd/system/jupyterhub-gpu-renew.timer", mode="644",
                          src=str(TEMPLATES / "jupyterhub-gpu-renew.timer"))
        systemd.daemon_reload(name="Reload systemd for the renewal timer", _if=any_changed(unit, timer))
        systemd.service(name="Renewal timer running", service="jupyterhub-gpu-renew.timer", running=True,
                        enabled=True)
    else:
        files.put(name="Renewal schedule (cron)", dest="/etc/cron.d/jupyterhub-gpu-renew", mode="644",
                  src=io.StringIO(render(TEMPLATES, "jupyterhub-gpu-renew.cron.j2", renew=renew)))
        cron_running(name="cron running")
    return [obtained]


def problems_before_change(target: Target) -> list[str]:
    """What stops the deploy before any change: a provided certificate that does not fit, or a port 80 that
    certbot cannot have."""
    settings = target.settings
    if settings.tls_mode == "provided":
        return provided.problems(settings.tls_cert_file, settings.tls_key_file, target.certificate_names,
                                 tuple(settings.hub_addresses))
    if settings.tls_mode == "letsencrypt" and settings.acme_challenge == "http-01":
        holding = port_holding(80)
        if holding.listening:
            return [f"acme_challenge = 'http-01': port 80 of the host is already taken ({holding.held_by()}), and "
                    "certbot must answer there; free it, or use acme_challenge: dns-01"]
    return []


@deploy("TLS certificate")
def ensure_certificate(target: Target) -> Certificate:
    ensure_installed(["openssl"], "certificate checks")
    directory = target.layout.tls
    files.directory(name="TLS directory", path=directory, mode="755")
    settings = target.settings
    if settings.tls_mode == "selfsigned":
        ca_directory = target.layout.ca
        ca_sans = subject_alt_names(list(target.names), list(target.addresses))
        before = host.get_fact(FileContents, path=f"{ca_directory}/names")
        issued = selfsigned_certificate(
            name="Self-signed certificate", directory=directory, ca_directory=ca_directory,
            names=list(target.names), addresses=list(target.addresses), wildcards=list(target.wildcard_names),
        )
        return Certificate(directory, ca=f"{ca_directory}/ca.crt", operations=[issued],
                           ca_remade_for=ca_sans if before not in (None, [ca_sans]) else "")
    # Another mode writes server.crt now: forget what a self-signed one covered, so that going back
    # to selfsigned issues a fresh certificate.
    files.file(name="No self-signed certificate in use", path=f"{directory}/names", present=False)
    if settings.tls_mode == "provided":
        return Certificate(directory, operations=[
            files.put(name="Provided certificate", src=str(settings.tls_cert_file), dest=f"{directory}/server.crt",
                      mode="644"),
            private_file(name="Provided key", src=str(settings.tls_key_file), dest=f"{directory}/server.key",
                         mode="600"),
        ])
    return Certificate(directory, operations=_letsencrypt(target, directory))
