"""Each user's server on an origin of its own (`user_subdomains`), deployed and used in a real browser: a page
that one user serves from their own server cannot read, with another person's login, that person's files or
the hub's API. Names resolve to the target through the browser's host rules (no wildcard DNS here)."""

from __future__ import annotations

import json
import re

import pytest

from testbed import smoke
from testbed.browser import HubPages
from testbed.targets import remove_targets

pytestmark = pytest.mark.slow

HUB = "hub.lab.test"
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


@pytest.fixture(scope="module")
def subdomain_hub(engine):
    deployment = smoke.start(1, prefix="subdomains", data={"hub_names": [HUB], "user_subdomains": True})
    try:
        smoke.deploy_twice(deployment)
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


def write_as(deployment, user: str, path: str, text: str) -> None:
    """Write a file as the user (jovyan) in their server's container, as they could from its terminal."""
    container = deployment.engine.containers.get(deployment.targets[0].container_id)
    write = ("import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
             "open(sys.argv[1], 'w').write(sys.argv[2])")
    code, output = container.exec_run(["docker", "exec", "-u", "1000", f"jupyter-{user}", "python3", "-c", write,
                                       path, text])
    assert code == 0, output.decode(errors="replace")


def test_a_page_one_user_serves_cannot_read_anothers_files_or_the_hub_with_their_login(subdomain_hub, browsers):
    deployment = subdomain_hub
    target = deployment.targets[0]
    said = deployment.runs[0].log
    assert f"each user's server has an origin of its own, https://<user>.{HUB}/" in said
    # The controller cannot resolve the test bed's names: the deploy says so, and goes on as asked.
    assert f"no wildcard DNS record: a name under {HUB} does not resolve here" in said
    hub = deployment.hub(target)
    password = deployment.read(target, f"{smoke.INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
    for user in ("admin", "mallory"):
        hub.ensure_user(user)
        hub.start_server(user)
    write_as(deployment, "admin", "/home/jovyan/secret.txt", SECRET)
    # mallory serves a page of her own from her server (static files, which Jupyter does not sandbox).
    page = EVIL_PAGE.replace("HUB_URL", f"https://{HUB}").replace("VICTIM_URL", f"https://admin.{HUB}/user/admin")
    write_as(deployment, "mallory", "/home/jovyan/site/cats.html", page)
    write_as(deployment, "mallory", "/home/jovyan/.jupyter/jupyter_server_config.py",
             'c.ServerApp.extra_static_paths = ["/home/jovyan/site"]\n')
    hub.stop_server("mallory")
    hub.start_server("mallory")

    browser = browsers([deployment.ca_file(target)], {HUB: target.address, f"*.{HUB}": target.address})
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
    other = browsers([deployment.ca_file(target)], {HUB: target.address, f"*.{HUB}": target.address})
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
    write_as(deployment, "mallory", "/home/jovyan/site/more.html",
             TOSS_PAGE.replace("HUB", HUB).replace("VALUE", json.dumps(login["value"])))
    browser.open(f"https://mallory.{HUB}/user/mallory/static/more.html")
    browser.wait_for_text("tossed", css="#result")
    browser.open(f"https://{HUB}/hub/home")
    me = browser.wait_for("#login_widget .me-1").text
    assert me == "admin", f"the hub took the cookie mallory's page set: the admin's session runs as {me}"
