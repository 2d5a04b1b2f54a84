"""Upgrading in place: a hub deployed with the previous JupyterHub (5.5) is deployed again with this checkout's
pins; its database is copied and upgraded, users, tokens and running servers stay, and the images it no
longer uses go once a rollback's worth is kept."""

from __future__ import annotations

import re

import pytest

from roles.images import jupyterhub_pin
from roles.images.recipes import TEMPLATES
from testbed import smoke
from testbed.hub import HubClient

pytestmark = pytest.mark.slow

PREVIOUS = "5.5.4"
CURRENT = jupyterhub_pin().removeprefix("jupyterhub==")


def previous_pins() -> list[str]:
    pins = [line for line in (TEMPLATES / "hub-requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    return [re.sub(r"^jupyterhub==\S+$", f"jupyterhub=={PREVIOUS}", pin) for pin in pins]


@pytest.fixture(scope="module")
def previous_hub(engine):
    with smoke.deployed(smoke.start(1, prefix="upgrade", data={"hub_packages": previous_pins()})) as deployment:
        yield deployment


def test_a_new_jupyterhub_upgrades_the_hub_in_place_and_keeps_users_tokens_and_servers(previous_hub):
    deployment, target = previous_hub, previous_hub.targets[0]
    hub = deployment.hub(target)
    assert hub.version() == PREVIOUS
    hub.ensure_user("ursula")
    token = hub.api("POST", "/users/ursula/tokens", json={"note": "ursula's script"}).json()["token"]
    hub.start_server("ursula")
    hub.write_file("ursula", "results.txt", "before the upgrade")
    container = deployment.output(target, "docker inspect --format '{{.Id}}' jupyter-ursula")
    old_images = deployment.output(target, "docker inspect --format '{{.Config.Image}}' jupyterhub jupyter-ursula")

    upgraded = deployment.redeploy_with(hub_packages=[])
    assert upgraded.returncode == 0, upgraded.log[-5000:]
    assert hub.wait_until_answering() == CURRENT
    # The server ran through the upgrade: the same container, its file, and the user's token still answers.
    assert deployment.output(target, "docker inspect --format '{{.Id}}' jupyter-ursula") == container
    assert hub.servers("ursula")[""]["ready"]
    assert hub.read_file("ursula", "results.txt") == "before the upgrade"
    me = HubClient(hub.url, hub.ca_file, token=token).api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == "ursula"
    # The database as it was is kept beside it, and the hub said what it did.
    copies = deployment.output(target, "docker exec jupyterhub ls /srv/jupyterhub")
    assert re.search(rf"jupyterhub\.sqlite\.{re.escape(PREVIOUS)}-to-{re.escape(CURRENT)}\.\d{{8}}T\d{{6}}Z",
                     copies), copies
    log = deployment.output(target, "docker logs jupyterhub 2>&1")
    assert f"JupyterHub {PREVIOUS} -> {CURRENT}: the database was copied" in log
    again = deployment.deploy()
    assert again.returncode == 0 and not again.totals.get("success"), again.changed_operations()

    # The previous hub image is kept for a rollback; with none to keep, it goes. The single-user image that
    # Ursula's running server was made from stays while it runs.
    old_hub, old_singleuser = old_images.split()
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_hub in images and old_singleuser in images
    pruned = deployment.redeploy_with(keep_previous_images=0)
    assert pruned.returncode == 0, pruned.log[-5000:]
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_hub not in images and old_singleuser in images
    hub.stop_server("ursula")
    deployment.deploy()
    images = deployment.output(target, "docker image ls --format '{{.Repository}}:{{.Tag}}'").split()
    assert old_singleuser not in images
