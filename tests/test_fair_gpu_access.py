"""Fair GPU access as people meet it, on a real JupyterHub with GPUDockerSpawner and real containers: the spawn
form's counts, the line for a GPU in real browsers (its place, first come first served, Cancel, a page left), the
line over a hub restart, and the groups' rules."""

from __future__ import annotations

import secrets
import time

import pytest

from testbed.browser import HubPages
from testbed.localhub import LocalHub
from testbed.wait import until

pytestmark = pytest.mark.slow

GPU, STANDARD = "GPU (CUDA)", "Standard"
PASSWORD = secrets.token_urlsafe(12)
# People log in through the hub's login form, as the test bed's own authenticator for a hub on loopback; the spawn
# page comes at once (no slow_spawn_timeout), so that a place in line shows as soon as one presses Start.
LOGIN = f"""
c.JupyterHub.authenticator_class = 'dummy'
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allow_all = True
c.JupyterHub.tornado_settings = {{'slow_spawn_timeout': 0}}
"""


@pytest.fixture
def make_hub(local_hubs):
    """Hubs with a GPU profile and a Standard one (the same small image), people logging in through the form."""
    profiles = {"allowed_images": {GPU: local_hubs.image, STANDARD: local_hubs.image}, "gpu_images": [GPU]}
    return lambda **spawner: local_hubs(LOGIN, **profiles, **spawner)


def request_gpu_server(hub: LocalHub, user: str) -> None:
    hub.api.ensure_user(user)
    response = hub.api.api("POST", f"/users/{user}/server", json={"image": GPU})
    assert response.status_code in (201, 202), response.text


def ready(hub: LocalHub, user: str, timeout: float = 120) -> None:
    until(lambda: (hub.api.servers(user).get("") or {}).get("ready"), timeout, f"{user}'s server ready", 0.2)


def pending(hub: LocalHub, user: str) -> bool:
    return (hub.api.servers(user).get("") or {}).get("pending") == "spawn"


def availability(pages: HubPages) -> str:
    pages.browser.open(f"{pages.base}/hub/spawn")
    return pages.browser.wait_for("#gpu-availability").text


def press_start(pages: HubPages) -> None:
    pages.browser.open(f"{pages.base}/hub/spawn")
    pages.browser.select("select[name=image]", GPU)
    pages.browser.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
    pages.browser.wait_for_url("/hub/spawn-pending/", timeout=60)


def test_the_form_counts_gpus_and_the_line_serves_the_first_who_waits_and_not_who_left(make_hub, browsers):
    hub = make_hub(gpu_ids=["0", "1"], on_exhausted="wait", gpu_wait_unwatched=3)
    base = f"http://127.0.0.1:{hub.proxy_port}"
    cat, dan = HubPages(browsers(), base), HubPages(browsers(), base)
    cat.logged_in("cat", PASSWORD)
    dan.logged_in("dan", PASSWORD)
    assert availability(cat) == "2 of 2 GPUs free"
    request_gpu_server(hub, "ann")
    ready(hub, "ann")
    assert availability(cat) == "1 of 2 GPUs free"
    request_gpu_server(hub, "ben")
    ready(hub, "ben")
    assert availability(cat) == ("0 of 2 GPUs free. Start a GPU server to wait in line for the next GPU released. "
                                 "(All 2 GPUs are in use.)")
    assert "GPU (CUDA) — 1 GPU (wait in line)" in cat.browser.text()

    # Cat presses Start and stands first in line; Dan, who pressed Start after her, second; Eve (REST) third.
    press_start(cat)
    cat.browser.wait_for_text("You are 1st in line for a GPU", css="#progress-message")
    press_start(dan)
    dan.browser.wait_for_text("You are 2nd in line for a GPU", css="#progress-message")
    request_gpu_server(hub, "eve")
    gus = HubPages(browsers(), base)
    gus.logged_in("gus", PASSWORD)
    assert availability(gus) == ("0 of 2 GPUs free, 3 waiting for one. Start a GPU server to wait in line for the "
                                 "next GPU released. (3 people wait for a GPU.)")
    assert pending(hub, "eve")

    # Ben stops: his GPU goes to Cat, the first in line, and her browser is taken to her server.
    bens = hub.gpus_of("ben")["device_requests"]
    released = time.monotonic()
    hub.api.stop_server("ben")
    ready(hub, "cat")
    print(f"\nfrom a GPU's release to the next in line's server ready: {time.monotonic() - released:.1f} s")
    cat.browser.wait_for_url("/user/cat/", timeout=60)
    assert hub.gpus_of("cat")["device_requests"] == bens
    dan.browser.wait_for_text("You are 1st in line for a GPU", css="#progress-message")
    assert pending(hub, "dan") and pending(hub, "eve")

    # Dan presses the spawn page's Stop Server: he leaves the line, and Eve gets the next GPU, not Dan.
    dan.browser.click("#stop-server-btn")
    until(lambda: not pending(hub, "dan"), 30, "Dan out of the line", 0.5)
    anns = hub.gpus_of("ann")["device_requests"]
    hub.api.stop_server("ann")
    ready(hub, "eve")
    assert hub.gpus_of("eve")["device_requests"] == anns and not hub.api.servers("dan")

    # Dan waits again, then closes the page: a few seconds later (gpu_wait_unwatched) his place is gone, and
    # the home page offers him to start again.
    press_start(dan)
    dan.browser.wait_for_text("You are 1st in line for a GPU", css="#progress-message")
    dan.browser.close_tab()
    until(lambda: not pending(hub, "dan"), 60, "Dan's place given up once he left the page", 0.5)
    assert "dan/: left the spawn page while waiting for a GPU: out of the line" in hub.log()
    dan.browser.open(f"{base}/hub/home")
    dan.browser.wait_for("#start")
    request_gpu_server(hub, "fay")
    cats = hub.gpus_of("cat")["device_requests"]
    hub.api.stop_server("cat")
    ready(hub, "fay")
    assert hub.gpus_of("fay")["device_requests"] == cats and not hub.api.servers("dan")


def test_a_hub_restart_ends_the_waits_and_keeps_every_gpu_held(make_hub):
    hub = make_hub(gpu_ids=["0"], on_exhausted="wait")
    request_gpu_server(hub, "ann")
    ready(hub, "ann")
    request_gpu_server(hub, "ben")
    until(lambda: "ben/: waiting for a GPU, 1 in line" in hub.log(), 30, "Ben in line", 0.5)
    hub.stop()
    hub.start()
    # The hub keeps no spawn that had not started: Ben starts again, at the end of a new line; Ann keeps her GPU.
    assert not hub.api.servers("ben") and hub.gpus_of("ann")["device_requests"] == ["0"]
    request_gpu_server(hub, "ben")
    until(lambda: hub.log().count("ben/: waiting for a GPU, 1 in line") == 2, 30, "Ben in line again", 0.5)
    hub.api.stop_server("ann")
    ready(hub, "ben")
    assert hub.gpus_of("ben")["device_requests"] == ["0"]


def test_group_rules_give_each_group_its_gpus_cap_them_and_name_the_rule(make_hub):
    rules = {"students": {"gpus_per_user": 1, "max_gpus": 1}, "research": {"gpus_per_user": 2}}
    hub = make_hub(gpu_ids=["0", "1", "2", "3"], gpu_groups=rules)
    members = {"students": ["sam", "sue", "rex"], "research": ["rex"]}
    for user in ["sam", "sue", "rex", "out"]:
        hub.api.ensure_user(user)
    for group, users in members.items():
        response = hub.api.api("POST", f"/groups/{group}", json={"users": users})
        assert response.status_code in (201, 409), response.text
    request_gpu_server(hub, "sam")
    ready(hub, "sam")
    assert len(hub.gpus_of("sam")["device_requests"]) == 1
    # The students hold their one GPU: Sue is refused, with the rule named.
    request_gpu_server(hub, "sue")
    said = until(lambda: _failed_message(hub, "sue"), 60, "Sue's spawn refused", 0.5)
    assert ("Your group's GPUs are all in use: students holds 1 of its 1 (group students: 1 GPU each, at most 1 "
            "together).") in said
    # Rex is in both groups: the most generous rule with room, research's two GPUs.
    request_gpu_server(hub, "rex")
    ready(hub, "rex")
    assert len(hub.gpus_of("rex")["device_requests"]) == 2
    # Someone in no GPU group is offered no GPU profile, and asking for one through the API is refused.
    response = hub.api.api("POST", "/users/out/server", json={"image": GPU})
    said = response.text if response.status_code >= 400 else until(lambda: _failed_message(hub, "out"), 60,
                                                                     "the outsider's GPU spawn refused", 0.5)
    assert "GPU (CUDA)" in said and not hub.api.servers("out")
    response = hub.api.api("POST", "/users/out/server", json={"image": STANDARD})
    assert response.status_code in (201, 202), response.text
    ready(hub, "out")
    assert hub.gpus_of("out")["visible"] == "void"


def _failed_message(hub: LocalHub, user: str) -> str | None:
    events = hub.api.get(f"/hub/api/users/{user}/server/progress").text
    return events if '"failed": true' in events else None


SLICE = "NVIDIA A100-SXM4-80GB MIG 1g.10gb"


def test_a_person_chooses_a_slice_on_the_form_gets_it_and_a_third_asking_for_that_kind_is_refused(make_hub, browsers):
    """The lab host's units (a GPU in MIG mode with a 3g.40gb and two 1g.10gb devices, two RTX 4090s) as the deploy
    describes them: Ann sees each kind with what is free of it, chooses a 1g.10gb slice and holds a MIG device of
    that kind, by its UUID in Docker's device request and her container's NVIDIA_VISIBLE_DEVICES; Ben holds the
    other; Cat sees that kind greyed out, and a start asking for it is refused in words."""
    from testbed.nvidia import LAB_GPUS, units_of

    found = units_of(LAB_GPUS)
    hub = make_hub(gpu_ids=[unit.uuid for unit in found],
                   gpu_units={unit.uuid: {"kind": unit.kind, "label": unit.label, "share": unit.share}
                              for unit in found})
    slices = {unit.uuid for unit in found if unit.kind == SLICE}
    base = f"http://127.0.0.1:{hub.proxy_port}"
    ann = HubPages(browsers(), base)
    ann.logged_in("ann", PASSWORD)
    ann.browser.open(f"{base}/hub/spawn")
    ann.browser.wait_for("#gpu_kind")
    options = [o.text for o in ann.browser.driver.find_elements("css selector", "#gpu_kind option")]
    assert options == ["Any kind — 5 of 5 free", "MIG 3g.40gb slice of an A100-SXM4-80GB — 1 of 1 free",
                       "MIG 1g.10gb slice of an A100-SXM4-80GB — 2 of 2 free", "GeForce RTX 4090 — 2 of 2 free"]
    print(f"\nthe spawn form with kinds: {ann.browser.screenshot('gpu-kinds-form')}")
    ann.browser.select("select[name=image]", GPU)
    ann.browser.select("#gpu_kind", SLICE)
    ann.browser.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
    ready(hub, "ann")
    anns = hub.gpus_of("ann")
    assert anns["device_requests"] == [anns["visible"]] == [anns["label"]] and anns["visible"] in slices

    hub.api.ensure_user("ben")
    response = hub.api.api("POST", "/users/ben/server", json={"image": GPU, "gpu_kind": SLICE})
    assert response.status_code in (201, 202), response.text
    ready(hub, "ben")
    assert {hub.gpus_of("ben")["visible"], anns["visible"]} == slices  # two slices of one GPU

    cat = HubPages(browsers(), base)
    cat.logged_in("cat", PASSWORD)
    cat.browser.open(f"{base}/hub/spawn")
    greyed = cat.browser.driver.find_element("css selector", f'#gpu_kind option[value="{SLICE}"]')
    assert greyed.text == "MIG 1g.10gb slice of an A100-SXM4-80GB — 0 of 2 free" and not greyed.is_enabled()
    response = hub.api.api("POST", "/users/cat/server", json={"image": GPU, "gpu_kind": SLICE})
    told = response.text if response.status_code >= 400 else until(
        lambda: (lambda events: events if '"failed": true' in events else None)(
            hub.api.get("/hub/api/users/cat/server/progress").text), 60, "Cat's start refused", 0.5)
    assert ("All 2 GPUs of the kind asked for (MIG 1g.10gb slice of an A100-SXM4-80GB) are in use; try again later"
            in told), told
    assert "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45" not in str(hub.assignments())  # never the A100 whole
