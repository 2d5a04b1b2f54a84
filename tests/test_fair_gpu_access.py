"""Fair GPU access as people meet it, on a real JupyterHub with GPUDockerSpawner and real containers: the spawn
form's counts, the line for a GPU in real browsers (its place, first come first served, Cancel, a page left), the
line over a hub restart, and the groups' rules."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from gpudockerspawner.usage import UsageLog
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


# The deploy's home-page notices and usage record (jupyterhub_gpu_hub.config), with the record in ``db``.
NOTICES = """
from jupyterhub_gpu_hub.config import configure_gpu_figures
from jupyterhub_gpu_hub.contract import GpuFigures
configure_gpu_figures(c, GpuFigures(samplers=[], on_nodes=False, interval=5, busy_at=5.0, figures_file="",
                                    usage_db={db!r}))
"""


@pytest.fixture
def make_hub(local_hubs):
    """Hubs with a GPU profile and a Standard one (the same small image), people logging in through the form;
    ``extra``: more of the hub's configuration."""
    profiles = {"allowed_images": {GPU: local_hubs.image, STANDARD: local_hubs.image}, "gpu_images": [GPU]}
    return lambda extra="", **spawner: local_hubs(LOGIN + extra, **profiles, **spawner)


def request_gpu_server(hub: LocalHub, user: str) -> None:
    hub.api.ensure_user(user)
    response = hub.api.api("POST", f"/users/{user}/server", json={"image": GPU})
    assert response.status_code in (201, 202), response.text


def ready(hub: LocalHub, user: str, timeout: float = 120) -> None:
    until(lambda: (hub.api.servers(user).get("") or {}).get("ready"), timeout, f"{user}'s server ready", 0.2)


def pending(hub: LocalHub, user: str) -> bool:
    return (hub.api.servers(user).get("") or {}).get("pending") == "spawn"


def refused_start(hub: LocalHub, user: str, options: dict) -> str:
    """What a start through the REST API is told where the hub refuses it (at once, or in its progress events)."""
    response = hub.api.api("POST", f"/users/{user}/server", json=options)
    if response.status_code >= 400:
        return response.text
    return until(lambda: (lambda events: events if '"failed": true' in events else None)(
        hub.api.get(f"/hub/api/users/{user}/server/progress").text), 60, f"{user}'s start refused", 0.5)


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
    told = refused_start(hub, "cat", {"image": GPU, "gpu_kind": SLICE})
    assert ("All 2 GPUs of the kind asked for (MIG 1g.10gb slice of an A100-SXM4-80GB) are in use; try again later"
            in told), told
    assert "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45" not in str(hub.assignments())  # never the A100 whole


def test_a_gpu_budget_is_shown_warned_of_enforced_granted_and_renewed(make_hub, browsers, tmp_path):
    """Ann may use 0.004 GPU-hours (14.4 s of a GPU) in each 1-minute period, in the hub's own zone (UTC): the form
    says so; her home page warns her while her server runs; at the end the hub stops it, says why on her home page
    and with her hold, greys out the GPU profile and refuses a start; a grant lets her start at once; the next
    period gives her hours again. The hub polls every second, so that the stop comes within one."""
    db = tmp_path / "usage.sqlite"
    hub = make_hub(NOTICES.format(db=str(db)), gpu_ids=["0"], gpu_hours=0.004, budget_period="1 minute",
                   poll_interval=1)
    base = f"http://127.0.0.1:{hub.proxy_port}"
    ann = HubPages(browsers(), base)
    ann.logged_in("ann", PASSWORD)
    # Her run, its stop and the grant within one period: a renewal meanwhile would give back what they spend.
    until(lambda: time.time() % 60 < 10, 60, "the start of a minute", 0.2)
    boundary = time.time() // 60 * 60 + 60
    renews = time.strftime("%H:%M UTC", time.gmtime(boundary))
    ann.browser.open(f"{base}/hub/spawn")
    assert ann.browser.wait_for("#gpu-budget").text == (
        f"0.004 of 0.004 GPU-hours left in this 1-minute period; renews at {renews}.")
    pressed = time.time()
    press_start(ann)
    ready(hub, "ann")
    ann.browser.open(f"{base}/hub/home")
    warned = ann.browser.wait_for("#gpu-budget-notice").text
    assert re.fullmatch(r"0\.00\d+ of 0\.004 GPU-hours left in this 1-minute period; renews at \d\d:\d\d UTC\. At "
                        r"this pace your GPU server stops at about \d\d:\d\d UTC: save your work\.", warned), warned
    # The hub is killed and started again while her server runs: the server runs on, and so does her hold.
    hub.kill()
    hub.start()

    until(lambda: not hub.api.servers("ann"), 45, "Ann's server stopped at the end of her budget", 0.5)
    assert re.search(r"ann/: 0\.00\d+ of 0\.004 GPU-hours left .*; at this pace the GPU budget runs out at", hub.log())
    ann.browser.open(f"{base}/hub/home")
    notice = ann.browser.wait_for("#gpu-cull-notice").text
    assert re.fullmatch(r"Your server was stopped at \d\d:\d\d UTC: its GPU budget in this 1-minute period ran out "
                        rf"\(0\.00\d+ of 0\.004 GPU-hours\); it renews at {renews}\. Your files are kept; start it "
                        r"again when you need it\.", notice), notice
    # One hold, from her start to the stop: the crash lost no second of it and counted none twice (the stop comes
    # at the first poll past 14.4 s of holding, 1 s apart, and takes a moment to stop the container).
    (hold,) = UsageLog(db).holds(pressed, time.time())
    assert hold.reason.startswith("culled: its GPU budget in this 1-minute period ran out")
    assert pressed <= hold.started and 14.4 <= hold.ended - hold.started <= 14.4 + 5, hold
    # The form greys out the GPU profile and says why; a start through the REST API is refused in the same words.
    ann.browser.open(f"{base}/hub/spawn")
    said = ann.browser.wait_for("#gpu-availability").text
    assert "A GPU server cannot start now. (Your GPU budget in this 1-minute period is used up" in said, said
    assert not ann.browser.driver.find_element("css selector", f'option[value="{GPU}"]').is_enabled()
    print(f"\nthe spawn form with a spent budget: {ann.browser.screenshot('gpu-budget-form')}")
    told = refused_start(hub, "ann", {"image": GPU})
    assert f"GPU-hours); it renews at {renews}." in told, told

    # An admin grants her 0.002 GPU-hours more for this period: she starts at once.
    UsageLog(db).grant(0.002, "a deadline", "admin", user="ann")
    request_gpu_server(hub, "ann")
    ready(hub, "ann")
    assert time.time() < boundary, "the grant came after the period renewed: the test proves nothing of it"
    hub.api.stop_server("ann")

    # The next period: hours again, without a grant.
    until(lambda: time.time() >= boundary, 70, "the next period", 0.5)
    request_gpu_server(hub, "ann")
    ready(hub, "ann")
    hub.api.stop_server("ann")
