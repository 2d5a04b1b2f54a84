"""Certificates from certbot against a local ACME server (Pebble), renewed by systemd's timer and service, and
provided ones, served by the hub. The provided certificate also covers every user's subdomain: that host gives each
user's server an origin of its own (`user_subdomains`), used in a real browser: a page that one user serves from
their own server cannot read, with another person's login, that person's files or the hub's API. Names resolve to
the target through the browser's host rules (no wildcard DNS here)."""

from __future__ import annotations

import json
import re
import socket
import ssl

import pytest

from testbed import STATE, smoke
from testbed.acme import Pebble, throwaway_ca
from testbed.browser import HubPages
from testbed.targets import SYSV, HostKind, bridge_gateway, remove_targets, write_inventory_file

pytestmark = pytest.mark.slow

LE_NAME = "hub-acme.example.test"
PROVIDED_NAME = "hub-provided.example.test"


@pytest.fixture(scope="module")
def pebble(engine):
    server = Pebble(bridge_gateway(engine))
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls_deployment(engine, pebble):
    """Two fresh targets deployed at once: one booted by systemd with a certificate from Pebble over HTTP-01,
    one booted by SysV init with a provided certificate (for the hub's name and its users' subdomains). Deployed
    twice; Pebble's order count is read between the runs."""
    deployment = smoke.start(2, prefix="tls", kinds=[HostKind("bookworm", "systemd"), SYSV])
    acme, provided = deployment.targets
    pebble.resolve(LE_NAME, acme.address)
    acme.data.update(tls_mode="letsencrypt", hub_names=[LE_NAME], acme_server=pebble.directory_url,
                     acme_email="admin@example.test", acme_ca_bundle=str(pebble.ca_file))
    ca, cert, key = throwaway_ca(STATE / "provided-tls", "provided", dns=[PROVIDED_NAME, f"*.{PROVIDED_NAME}"])
    provided.data.update(tls_mode="provided", hub_names=[PROVIDED_NAME], tls_cert_file=str(cert), tls_key_file=str(key),
                         user_subdomains=True)
    write_inventory_file(deployment.targets, deployment.targets_file)
    try:
        first = deployment.deploy()
        assert first.returncode == 0, first.log[-6000:]
        deployment.orders_after_first = pebble.orders()
        deployment.deploy()  # the second run; its results are read in the tests
        deployment.orders_after_second = pebble.orders()
        deployment.provided_ca = ca
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)


def served_certificate(address: str, name: str, ca_pem: str | None = None, ca_file=None) -> dict:
    """Connect by address, ask for ``name``, verify the chain and the name; return the peer certificate."""
    context = ssl.create_default_context(cadata=ca_pem, cafile=str(ca_file) if ca_file else None)
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return tls.getpeercert()


def test_letsencrypt_mode_serves_a_certificate_that_chains_to_pebbles_root(tls_deployment, pebble):
    acme = tls_deployment.targets[0]
    certificate = served_certificate(acme.address, LE_NAME, ca_pem=pebble.issuing_root())
    assert ("DNS", LE_NAME) in certificate["subjectAltName"]
    assert tls_deployment.orders_after_first >= 1


def test_second_deploy_changes_nothing_and_orders_nothing(tls_deployment):
    second = tls_deployment.runs[1]
    assert second.returncode == 0
    assert second.totals["success"] == 0, second.changed_operations()
    assert tls_deployment.orders_after_second == tls_deployment.orders_after_first


def test_provided_mode_serves_the_provided_certificate(tls_deployment):
    provided = tls_deployment.targets[1]
    certificate = served_certificate(provided.address, PROVIDED_NAME, ca_file=tls_deployment.provided_ca)
    assert ("DNS", PROVIDED_NAME) in certificate["subjectAltName"]
    container = tls_deployment.engine.containers.get(provided.container_id)
    code, output = container.exec_run(["stat", "-c", "%a %U", "/opt/jupyterhub-gpu/tls/server.key"])
    assert (code, output.decode().strip()) == (0, "600 root"), "the key must be readable by root only"


def test_the_renewal_timer_is_enabled_and_scheduled_by_systemd(tls_deployment):
    container = tls_deployment.engine.containers.get(tls_deployment.targets[0].container_id)
    timers = container.exec_run(["systemctl", "list-timers", "--all", "--no-legend", "jupyterhub-gpu-renew.timer"])
    listed = timers.output.decode()
    assert "jupyterhub-gpu-renew.timer" in listed and "jupyterhub-gpu-renew.service" in listed
    enabled = container.exec_run(["systemctl", "is-enabled", "jupyterhub-gpu-renew.timer"])
    assert enabled.output.decode().strip() == "enabled"


def test_forced_renewal_serves_a_new_serial_and_keeps_user_servers(tls_deployment, pebble):
    acme = tls_deployment.targets[0]
    root = pebble.issuing_root()
    ca_file = STATE / "pebble-root.pem"
    ca_file.write_text(root)
    hub = tls_deployment.hub(acme, ca_file=ca_file, server_hostname=LE_NAME)
    hub.user_server_with_file("ann", "work.txt", "before renewal")
    container = tls_deployment.engine.containers.get(acme.container_id)
    started = container.exec_run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                                  "jupyter-ann"]).output
    before = served_certificate(acme.address, LE_NAME, ca_pem=root)["serialNumber"]

    # What the timer starts, started once: the unit's own command, forced, and without the random wait that
    # spreads scheduled renewals (a runtime drop-in, gone at the next boot, adds certbot's two flags).
    drop_in = "/run/systemd/system/jupyterhub-gpu-renew.service.d"
    code, output = container.exec_run(["sh", "-c", f"mkdir -p {drop_in} && printf '[Service]\\nExecStart=\\n"
                                       "ExecStart=/opt/jupyterhub-gpu/acme/renew --force-renewal "
                                       f"--no-random-sleep-on-renew\\n' > {drop_in}/force.conf && systemctl "
                                       "daemon-reload "
                                       "&& systemctl start jupyterhub-gpu-renew.service"])
    assert code == 0, output.decode(errors="replace")
    result = container.exec_run(["systemctl", "show", "--property=Result", "--value", "jupyterhub-gpu-renew.service"])
    assert result.output.decode().strip() == "success"
    hub.wait_until_answering()

    assert served_certificate(acme.address, LE_NAME, ca_pem=root)["serialNumber"] != before
    assert container.exec_run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                               "jupyter-ann"]).output == started
    assert hub.read_file("ann", "work.txt") == "before renewal"


# Each user's server on an origin of its own, on the provided-certificate host (its certificate covers *.<name>).
HUB = PROVIDED_NAME
SECRET = "the admin's own notes"
# What the other user's server serves (as anyone may, from their own server): it tries to read, with the
# visitor's login, the hub's API and the visitor's file, by fetch and in a frame, and writes what it got.
EVIL_PAGE = """<!doctype html><title>cat pictures</title><pre id="result">working</pre><script>
const out = {};
async function fetched(name, url) {
  try { const r = await fetch(url, {credentials: "include"}); out[name] = "read " + r.status + " " + (await r.text()).slice(0, 120); }
  catch (e) { out[name] = "blocked " + e.name; }
}
function framed(name, url) {
  return new Promise(resolve => {
    const frame = document.createElement("iframe");
    const done = said => { if (!(name in out)) { out[name] = said; } resolve(); };
    frame.onload = () => { try { done("read " + frame.contentDocument.body.innerText.slice(0, 120)); }
                           catch (e) { done("blocked " + e.name); } };
    setTimeout(() => done("blocked timeout"), 15000);
    frame.src = url;
    document.body.appendChild(frame);
  });
}
(async () => {
  await fetched("own", location.href);
  await fetched("hub_page", "HUB_URL/hub/home");
  await fetched("hub_api", "HUB_URL/hub/api/user");
  await fetched("victim_file", "VICTIM_URL/files/secret.txt");
  await framed("victim_frame", "VICTIM_URL/api/contents/secret.txt?content=1");
  document.getElementById("result").textContent = "done " + JSON.stringify(out);
})();
</script>"""  # noqa: E501 (a script's own lines)


# What the other user's page does with her own hub login (login fixation): it sets it as the hub's cookie for the
# whole domain, so that the visitor's next visit to the hub would run as her, under every name the hub may read.
TOSS_PAGE = """<!doctype html><title>more cats</title><pre id="result">working</pre><script>
const value = VALUE;
for (const name of ["jupyterhub-hub-login", "__Host-jupyterhub-hub-login"]) {
  for (const where of ["domain=HUB; path=/hub/", "domain=HUB; path=/", "path=/"]) {
    document.cookie = name + "=" + value + "; " + where + "; secure";
  }
}
document.getElementById("result").textContent = "tossed";
</script>"""


def write_as(deployment, target, user: str, path: str, text: str) -> None:
    """Write a file as the user (jovyan) in their server's container, as they could from its terminal."""
    container = deployment.engine.containers.get(target.container_id)
    write = ("import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
             "open(sys.argv[1], 'w').write(sys.argv[2])")
    code, output = container.exec_run(["docker", "exec", "-u", "1000", f"jupyter-{user}", "python3", "-c", write,
                                       path, text])
    assert code == 0, output.decode(errors="replace")


def test_a_page_one_user_serves_cannot_read_anothers_files_or_the_hub_with_their_login(tls_deployment, browsers):
    deployment = tls_deployment
    target = deployment.targets[1]
    said = deployment.runs[0].log
    assert f"each user's server has an origin of its own, https://<user>.{HUB}/" in said
    # The controller cannot resolve the test bed's names: the deploy says so, and goes on as asked.
    assert f"no wildcard DNS record: a name under {HUB} does not resolve here" in said
    hub = deployment.hub(target, deployment.provided_ca, HUB)
    password = deployment.read(target, f"{smoke.INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
    for user in ("admin", "mallory"):
        hub.ensure_user(user)
        hub.start_server(user)
    write_as(deployment, target, "admin", "/home/jovyan/secret.txt", SECRET)
    # mallory serves a page of her own from her server (static files, which Jupyter does not sandbox).
    page = EVIL_PAGE.replace("HUB_URL", f"https://{HUB}").replace("VICTIM_URL", f"https://admin.{HUB}/user/admin")
    write_as(deployment, target, "mallory", "/home/jovyan/site/cats.html", page)
    write_as(deployment, target, "mallory", "/home/jovyan/.jupyter/jupyter_server_config.py",
             'c.ServerApp.extra_static_paths = ["/home/jovyan/site"]\n')
    hub.stop_server("mallory")
    hub.start_server("mallory")

    browser = browsers([deployment.provided_ca], {HUB: target.address, f"*.{HUB}": target.address})
    pages = HubPages(browser, f"https://{HUB}/")
    pages.login("admin", password)
    # The hub sends the admin on to their running server, on its own subdomain, which sets its login cookie there.
    browser.wait_for_url(f"https://admin.{HUB}/user/admin/")
    browser.open(f"https://admin.{HUB}/user/admin/files/secret.txt")
    browser.wait_for_text(SECRET)
    assert browser.url.startswith(f"https://admin.{HUB}/user/admin/")
    # ...then follows a link to mallory's page.
    browser.open(f"https://mallory.{HUB}/user/mallory/static/cats.html")
    result = browser.wait_for_text("done ", css="#result")
    found = json.loads(re.search(r"done (\{.*\})", result).group(1))
    assert found["own"].startswith("read 200"), found  # the page's script ran, on mallory's own origin
    # On one origin (user_subdomains: false, tried by hand with this page) hub_page reads "200" and the hub's home
    # page with the admin's login, xsrf token included, which opens the hub's API to the page: here it is another
    # origin, and the browser keeps every answer from it.
    for attempt in ("hub_page", "hub_api", "victim_file", "victim_frame"):
        assert found[attempt].startswith("blocked"), (attempt, found)
    assert SECRET not in result

    # mallory signs up and logs in (the admin approves her, not knowing), and takes her own hub login cookie...
    other = browsers([deployment.provided_ca], {HUB: target.address, f"*.{HUB}": target.address})
    mallory = HubPages(other, f"https://{HUB}/")
    mallory_password = "mallorys-own-long-password"
    assert "information has been sent to the admin" in mallory.signup("mallory", mallory_password)
    pages.authorize("mallory")
    mallory.login("mallory", mallory_password)
    other.wait_for_url(f"https://mallory.{HUB}/user/mallory/")
    other.open(f"https://{HUB}/hub/home")
    (login,) = [c for c in other.driver.get_cookies() if c["name"].endswith("jupyterhub-hub-login")]
    # ...the hub's cookie can only come from the hub's own origin, and carries no Domain for subdomains to share.
    assert login["name"] == "__Host-jupyterhub-hub-login" and login["path"] == "/" and login["secure"], login
    assert "domain" not in login or login["domain"] == HUB, login
    # Her page sets it for the whole domain under every name; the admin visits it, then goes back to the hub.
    write_as(deployment, target, "mallory", "/home/jovyan/site/more.html",
             TOSS_PAGE.replace("HUB", HUB).replace("VALUE", json.dumps(login["value"])))
    browser.open(f"https://mallory.{HUB}/user/mallory/static/more.html")
    browser.wait_for_text("tossed", css="#result")
    browser.open(f"https://{HUB}/hub/home")
    me = browser.wait_for("#login_widget .me-1").text
    assert me == "admin", f"the hub took the cookie mallory's page set: the admin's session runs as {me}"
