"""Whether users' servers get origins of their own, decided before any change: where the certificate can cover
`*.<hub name>` and the names resolve, and said why where not."""

from __future__ import annotations

import pytest

from jupyterhub_gpu.facts import HostProfile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target
from roles.images import Images
from roles.preflight import subdomains
from roles.preflight.subdomains import CannotCover, user_domain
from roles.services import compose_project, hub_settings
from testbed.acme import throwaway_ca

IMAGES = Images(hub="h:1", singleuser="s:1", proxy="p:1")


@pytest.fixture
def wildcard_dns(monkeypatch):
    """What the controller's resolver answers for names under the hub's: {suffix: resolves}."""
    answers = {}
    monkeypatch.setattr(subdomains, "_resolves", lambda name: answers.get(name.split(".", 1)[1], False))
    return answers


def test_on_where_a_wildcard_resolves_and_the_certificate_covers_it(wildcard_dns, tmp_path):
    wildcard_dns["hub.example.org"] = True
    credentials = tmp_path / "rfc2136.ini"
    credentials.write_text("dns_rfc2136_server = 192.0.2.53\n")
    assert user_domain(HubSettings(hub_names=["hub.example.org"])) == ("hub.example.org", "")
    # Names under localhost go to the loopback address in every browser: no DNS needed.
    assert user_domain(HubSettings(hub_names=["jupyter.localhost", "localhost"])) == ("jupyter.localhost", "")
    acme = HubSettings(hub_names=["hub.example.org"], tls_mode="letsencrypt", acme_email="a@example.org",
                       acme_challenge="dns-01", acme_dns_plugin="rfc2136", acme_dns_credentials=str(credentials))
    assert user_domain(acme)[0] == "hub.example.org"


@pytest.mark.parametrize(("settings", "why"), [
    ({}, "the hub is reached by a bare host name and addresses"),
    ({"hub_names": ["gpubox"]}, "a bare host name (gpubox)"),
    ({"hub_names": ["localhost"]}, "a bare host name (localhost)"),
    ({"hub_names": ["hub.example.org"]}, "no wildcard DNS record: a name under hub.example.org does not resolve here"),
    ({"hub_names": ["hub.example.org"], "tls_mode": "letsencrypt", "acme_email": "a@example.org"},
     "a certificate for *.hub.example.org needs acme_challenge: dns-01"),
    ({"hub_names": ["hub.example.org"], "user_subdomains": False}, "user_subdomains is false"),
])
def test_off_with_the_reason_where_they_cannot_work(wildcard_dns, settings, why):
    domain, said = user_domain(HubSettings(**settings))
    assert domain is None and why in said


def test_asked_for_where_the_certificate_cannot_cover_them_is_refused(wildcard_dns, tmp_path):
    wildcard_dns["hub.example.org"] = True
    with pytest.raises(CannotCover,
                       match=r"user_subdomains = True, but the hub is reached by a bare host name \(gpubox\)"):
        user_domain(HubSettings(hub_names=["gpubox"], user_subdomains=True))
    _, cert, key = throwaway_ca(tmp_path, "one", dns=["hub.example.org"])
    provided = {"hub_names": ["hub.example.org"], "tls_mode": "provided", "tls_cert_file": str(cert),
                "tls_key_file": str(key)}
    assert user_domain(HubSettings(**provided)) == (None, "tls_cert_file does not cover *.hub.example.org")
    with pytest.raises(CannotCover, match=r"tls_cert_file does not cover \*.hub.example.org"):
        user_domain(HubSettings(**provided, user_subdomains=True))
    # Asked for, where only the users' network may resolve the names: on, and the deploy says what it could not see.
    wildcard_dns["hub.example.org"] = False
    assert user_domain(HubSettings(hub_names=["hub.example.org"], user_subdomains=True)) == (
        "hub.example.org", "no wildcard DNS record: a name under hub.example.org does not resolve here; add "
        "*.hub.example.org pointing to the hub")


def test_on_the_hub_routes_by_host_and_the_certificate_names_the_wildcard():
    on = Target(HubSettings(hub_names=["hub.example.org"], https_port=8443), HostProfile(os_id="debian"),
                user_domain="hub.example.org")
    assert on.certificate_names == ("hub.example.org", "*.hub.example.org")
    assert hub_settings(on, IMAGES).hub.subdomain_host == "https://hub.example.org:8443"
    assert "--host-routing" in compose_project(on, IMAGES, _Certificate(), _Secrets())["services"]["proxy"]["command"]
    off = Target(HubSettings(), HostProfile(os_id="debian", hostname="gpubox"))
    assert off.certificate_names == ("gpubox", "localhost") and hub_settings(off, IMAGES).hub.subdomain_host is None
    assert "--host-routing" not in compose_project(off, IMAGES, _Certificate(),
                                                   _Secrets())["services"]["proxy"]["command"]


class _Certificate:
    directory = "/opt/jupyterhub-gpu/tls"


class _Secrets:
    paths = {"proxy_token": "/opt/jupyterhub-gpu/secrets/proxy_token"}
