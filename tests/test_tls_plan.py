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
