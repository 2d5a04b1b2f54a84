"""What the certificate role would run where the test bed cannot go: a systemd host (renewal timer) and DNS-01."""

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import TmpDir
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from jupyterhub_gpu.apt import PackageManagerState
from jupyterhub_gpu.facts import HostProfile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target
from roles.tls import CertificateState, ensure_certificate
from tests.plan import commands_of, plan

UBUNTU_24 = dict(os_id="ubuntu", os_version="24.04", os_codename="noble", arch="x86_64", pid1="systemd")


def facts(certificate=None):
    return {
        DebPackages: {"openssl": ["3"]},
        File: lambda path: None,
        Sha1File: lambda path: None,
        Directory: lambda path: {"mode": 755} if path in ("/etc/systemd/system",) else None,
        PackageManagerState: {"busy": [], "interrupted": False},
        TmpDir: "/tmp",
        CertificateState: lambda path, days=30: certificate,
        SystemdStatus: {"jupyterhub-gpu-renew.timer": False},
        SystemdEnabled: {"jupyterhub-gpu-renew.timer": False},
    }


def letsencrypt(tmp_path, **settings):
    base = dict(tls_mode="letsencrypt", hub_names=["hub.example.org"], acme_email="admin@example.org")
    return Target(HubSettings(**(base | settings)), HostProfile(**UBUNTU_24))


def test_http01_on_a_systemd_host_gets_certbot_and_a_renewal_timer(monkeypatch, tmp_path):
    commands = commands_of(plan(monkeypatch, facts(), ensure_certificate, letsencrypt(tmp_path)))
    assert any(c.endswith("install --no-install-recommends certbot") for c in commands)
    (certbot,) = [c for c in commands if c.startswith("certbot certonly")]
    assert certbot == ("certbot certonly --non-interactive --agree-tos -m admin@example.org "
                       "--server https://acme-v02.api.letsencrypt.org/directory --cert-name jupyterhub-gpu "
                       "--force-renewal --deploy-hook /opt/jupyterhub-gpu/acme/deploy-hook "
                       "--standalone --http-01-port 80 -d hub.example.org")
    assert "systemctl daemon-reload" in commands
    assert "systemctl start jupyterhub-gpu-renew.timer" in commands
    assert "systemctl enable jupyterhub-gpu-renew.timer" in commands
    assert not any("cron" in c for c in commands)


def test_dns01_installs_the_plugin_and_keeps_its_credentials_private(monkeypatch, tmp_path):
    credentials = tmp_path / "cloudflare.ini"
    credentials.write_text("dns_cloudflare_api_token = x\n")
    target = letsencrypt(tmp_path, acme_challenge="dns-01", acme_dns_plugin="cloudflare",
                         acme_dns_credentials=str(credentials))
    planned = plan(monkeypatch, facts(), ensure_certificate, target)
    commands = commands_of(planned)
    assert any(c.endswith("install --no-install-recommends certbot python3-certbot-dns-cloudflare") for c in commands)
    (certbot,) = [c for c in commands if c.startswith("certbot certonly")]
    assert certbot == ("certbot certonly --non-interactive --agree-tos -m admin@example.org "
                       "--server https://acme-v02.api.letsencrypt.org/directory --cert-name jupyterhub-gpu "
                       "--force-renewal --deploy-hook /opt/jupyterhub-gpu/acme/deploy-hook --dns-cloudflare "
                       "--dns-cloudflare-credentials /opt/jupyterhub-gpu/acme/dns-credentials.ini -d hub.example.org")
    # Never through pyinfra's files.put, which stages uploads under sudo in /tmp where every account reads them.
    assert "private upload /opt/jupyterhub-gpu/acme/dns-credentials.ini mode 600" in commands


def test_a_covering_certificate_is_not_requested_again(monkeypatch, tmp_path):
    covering = {"names": ["hub.example.org"], "valid": True}
    commands = commands_of(plan(monkeypatch, facts(covering), ensure_certificate, letsencrypt(tmp_path)))
    assert not any(c.startswith("certbot") for c in commands)
    renamed = letsencrypt(tmp_path, hub_names=["hub.example.org", "jupyter.example.org"])
    commands = commands_of(plan(monkeypatch, facts(covering), ensure_certificate, renamed))
    (certbot,) = [c for c in commands if c.startswith("certbot certonly")]
    assert certbot.endswith(" -d hub.example.org -d jupyter.example.org")


def test_a_local_ca_made_anew_for_new_names_is_said_and_one_that_stays_is_not(monkeypatch):
    """Names or addresses that change make the local CA anew (it may vouch only for those it was made for), so the
    trust people gave the old one is gone: the deploy says so, where a CA was there before, and only then."""
    from pyinfra.api import deploy
    from pyinfra.facts.files import FileContents

    from roles.tls import subject_alt_names

    target = Target(HubSettings(hub_names=["gpubox", "gpubox.lab.example.org"], hub_addresses=["127.0.0.1"]),
                    HostProfile(**UBUNTU_24))
    ca_sans = subject_alt_names(list(target.names), list(target.addresses))
    assert ca_sans == "DNS:gpubox,DNS:gpubox.lab.example.org,IP:127.0.0.1"
    made = []

    @deploy("The hub's certificate")
    def certificate():
        made.append(ensure_certificate(target))

    for ca_names_before, issued, remade_for in (
        (None, True, ""),  # the first deploy: nobody trusted a CA yet
        ([ca_sans], False, ""),  # unchanged: the CA and the certificate stay
        (["DNS:gpubox,IP:127.0.0.1"], True, ca_sans),  # a name added to hub_names
    ):
        before = {f"{target.layout.ca}/names": ca_names_before, f"{target.layout.tls}/names": ca_names_before}
        planned = plan(monkeypatch, facts() | {FileContents: lambda path: before.get(path)}, certificate)
        assert any(name.endswith("| Self-signed certificate") and commands for name, commands in planned) is issued
        assert made.pop().ca_remade_for == remade_for
