"""Logging in through a directory and an OpenID Connect provider, in a real browser: two fresh targets,
one with authenticator ldap (the test bed's slapd over ldaps), one with oauth (the test bed's oidc-provider),
deployed at once and deployed again without change."""

from __future__ import annotations

import json

import pytest

from testbed import smoke
from testbed.browser import HubPages, JupyterLab
from testbed.ldap import Directory
from testbed.oidc import Provider
from testbed.targets import SYSTEMD_SUDO, SYSV, bridge_gateway, write_inventory_file
from testbed.transfers import TransferWatch, pyinfra_staging

pytestmark = pytest.mark.slow

OIDC_HUB = "hub-oidc.testbed.test"
PEOPLE = {"ada": "ada-ldap-passphrase", "bob": "bob-ldap-passphrase"}
OIDC_ACCOUNTS = {"cleo": {"password": "cleo-oidc-passphrase", "groups": ["physics"]},
                 "dan": {"password": "dan-oidc-passphrase", "groups": ["chemistry"]}}


@pytest.fixture(scope="module")
def providers(engine):
    gateway = bridge_gateway(engine)
    directory = Directory(gateway, PEOPLE, hub_users=["ada"])
    provider = Provider(gateway, f"https://{OIDC_HUB}/hub/oauth_callback", OIDC_ACCOUNTS)
    yield directory, provider
    provider.close()
    directory.close()


@pytest.fixture(scope="module")
def idp_deployment(engine, providers):
    """The OpenID Connect host is reached as a user with sudo, and watched from before its first deploy for files
    another account could read (the OAuth client secret crosses the connection)."""
    directory, provider = providers
    deployment = smoke.start(2, prefix="idp", kinds=[SYSV, SYSTEMD_SUDO])
    ldap_target, oidc_target = deployment.targets
    ldap_target.data.update(directory.inventory_data())
    oidc_target.data.update(provider.inventory_data(), hub_names=[OIDC_HUB], allowed_groups=["physics"])
    write_inventory_file(deployment.targets, deployment.targets_file)
    watch = TransferWatch(deployment, oidc_target)
    watch.start()
    with smoke.deployed(deployment):
        deployment.transfers = watch.seen(), watch.left_behind()
        yield deployment


def test_second_deploy_changes_nothing(idp_deployment):
    assert idp_deployment.runs[1].totals["success"] == 0, idp_deployment.runs[1].changed_operations()


def test_the_oauth_secret_crossed_to_the_sudo_users_host_where_no_other_account_could_read_it(idp_deployment,
                                                                                              providers):
    _, provider = providers
    seen, left = idp_deployment.transfers
    secret = provider.secret_file.read_bytes().strip()
    target = idp_deployment.targets[1]
    assert idp_deployment.read(target, f"{smoke.INSTALL_DIR}/secrets/oauth_client_secret").strip() == secret
    assert seen.events, "the watcher saw the deploy's files come and go"
    assert seen.exposed_holding(secret) == [], "another account could read the secret while it crossed"
    # Staged only in a private directory of the SSH user's: pyinfra's own staging for that file, which every account
    # may read, was never made (the kernel queues every event: even a file that lived a millisecond is seen).
    assert pyinfra_staging(f"{smoke.INSTALL_DIR}/secrets/oauth_client_secret") not in seen.paths()
    private = [path for _, _, path in seen.events if "/jupyterhub-gpu-transfer." in path]
    assert private and not [path for kind, _, path in seen.events if kind == "exposed" and path in private]
    assert left == "", f"left behind on the host: {left}"


def test_ldap_member_logs_in_and_gets_a_server_and_a_non_member_is_refused(idp_deployment, browsers):
    target = idp_deployment.targets[0]
    url = f"https://{target.address}/"
    pages = HubPages(browsers([idp_deployment.ca_file(target)]), url)

    pages.login("bob", PEOPLE["bob"])  # in the directory, not in cn=hub-users
    assert "Invalid username or password" in pages.browser.wait_for_text("Invalid username")
    pages.login("ada", "not-adas-password")
    assert "Invalid username or password" in pages.browser.wait_for_text("Invalid username")

    pages.logged_in("ada", PEOPLE["ada"])
    pages.start_server_or_fail()
    lab = JupyterLab(pages.browser)
    lab.wait_until_loaded()
    assert pages.browser.url.startswith(f"{url}user/ada/lab")
    # This host has no GPU: JupyterLab's GPU view says so in the status bar, and asks nothing about Jupyter's news.
    assert lab.gpu_status() == "CPU only"
    assert not lab.notifications("Jupyter news")
    # A managed hub's JupyterLab asks nobody about Jupyter's news feed, nor looks for releases (jupyterlab_news):
    # the image's settings say so, and Ada's JupyterLab took them as its defaults (JupyterLab puts overrides there).
    pages.browser.open(f"{url}user/ada/lab/api/settings/@jupyterlab/apputils-extension:notification")
    defaults = json.loads(pages.browser.text())["schema"]["properties"]
    assert (defaults["fetchNews"]["default"], defaults["checkForUpdates"]["default"]) == ("false", False), defaults


def test_oidc_login_goes_to_the_provider_and_back_and_a_server_starts(idp_deployment, providers, browsers):
    _, provider = providers
    target = idp_deployment.targets[1]
    url = f"https://{OIDC_HUB}/"

    def log_in_at_the_provider(username: str):
        """A person's own browser: the hub sends it to the provider, they sign in there."""
        browser = browsers([idp_deployment.ca_file(target), provider.ca_file], hosts={OIDC_HUB: target.address})
        browser.open(f"{url}hub/login")
        browser.click_link("/hub/oauth_login")
        browser.wait_for_url(provider.issuer)
        browser.fill("#idp-username", username)
        browser.fill("#idp-password", OIDC_ACCOUNTS[username]["password"])
        browser.click("#idp-submit")
        return browser

    refused = log_in_at_the_provider("dan")  # the provider knows dan, but not in "physics"
    refused.wait_for_url(f"{url}hub/")
    assert "403" in refused.wait_for_text("403")

    browser = log_in_at_the_provider("cleo")
    # Back at the hub, which starts cleo's server at once (this host offers one profile: no form to fill) and
    # sends the browser on to it, through the spawn page or, where the server answers within the hub's first
    # second, straight past it.
    browser.wait_for_url(f"{url}user/cleo/")
    JupyterLab(browser).wait_until_loaded()
    assert browser.url.startswith(f"{url}user/cleo/lab")
