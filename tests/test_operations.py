"""Operating a deployed hub over time: idle GPUs go back to the pool through the idle culler (GPU idleness a signal
of its own, a busy GPU counted as activity), the GPU page and the GPU-hours record show what the stand-in GPUs
report and who held them, a Prometheus scraper reads the hub's metrics (the GPUs' among them) with a token that may
read nothing else, and a wiped host is reprovisioned from a backup (back up, destroy, fresh host, restore, deploy).

One GPU target (two stand-in GPUs) deployed twice, with limits short enough to watch: a server whose GPU stays
under 5 % for 20 s is stopped even with kernel output, a busy GPU's server after 90 s, a CPU-only one not within
the test. The reprovisioning test comes
last: it destroys that target. The target, and the fresh one that replaces it, are Debian 12 booted by systemd
and reached as a user whose sudo asks for a password (pyinfra's _sudo_password): the deploy, the backup's download
and the restore's upload all go through sudo."""

from __future__ import annotations

import io
import json
import re
import secrets
import shlex
import tarfile
import time
from pathlib import Path

import pytest

from roles.network import GPU_VIEW_PORT
from testbed import smoke
from testbed.browser import HubPages, JupyterLab
from testbed.deploy import run_deploy
from testbed.hub import HubClient
from testbed.nvidia import set_gpu_work
from testbed.targets import HostKind, remove_targets, start_targets, write_inventory_file
from testbed.transfers import TransferWatch, pyinfra_staging
from testbed.wait import until

pytestmark = pytest.mark.slow

INSTALL_DIR = smoke.INSTALL_DIR
# JupyterLab warns 15 and 6 seconds before a stop: the 15- and 5-minute warnings, scaled to a 20-second limit.
LIMITS = {"gpu_idle_timeout": 20, "gpu_max_age": 90, "cull_every": 5, "activity_interval": 5,
          "gpu_idle_utilization": 5, "gpu_busy_is_activity": True, "gpu_sample_interval": 2,
          "cull_warnings": [0.25, 0.1]}
# Kernel output every two seconds, from a thread: the kernel is busy, and its server says so to the hub.
TICKER = """
import threading, time
def _tick():
    while True:
        print(".", end="", flush=True)
        time.sleep(2)
threading.Thread(target=_tick, daemon=True).start()
"ticking"
"""


# Erin's loop (bounded: 120 s at most, and stopped after the backup): a file of his home becomes a link to the hub's
# cookie secret, as the packer saw it from a container that also held the secrets, and back; it counts its swaps.
SWAPPER = """echo $$ > /tmp/swapper.pid
end=$(( $(date +%s) + 120 )); n=0
while [ "$(date +%s)" -lt "$end" ]; do
  echo mine > swap.file && mv -f swap.file swap
  ln -sfn /backup/install/secrets/cookie_secret swap.link && mv -Tf swap.link swap
  n=$((n + 1)); echo "$n" > /tmp/swaps
  sleep 0.01  # a person's loop, not one that takes a core from the backup it races
done"""


# The hub's name, not the host's address, is in its certificate: the reprovisioned host has another address,
# and browsers that trusted the local CA keep trusting the hub.
NAME = "jupyter.lab.test"
# A GPU budget for everyone, which no test here reaches (its running out is fair access's test): the admins' page
# shows it, grants are kept through a backup, and the gauges say what is left.
BUDGET = {"gpu_hours": 1, "budget_period": "week"}
# A course's folder: staff write it, students read it; backed up and restored with the homes.
COURSE = "shared/course-101"
SHARED = {"shared_folders": {"course-101": {"mount": f"/home/jovyan/{COURSE}", "read": ["students"],
                                            "write": ["staff"]}}}
DATA = {**LIMITS, **BUDGET, **SHARED, "metrics_token": True, "hub_names": [NAME], "hub_addresses": ["127.0.0.1"]}
SUDO_WITH_PASSWORD = HostKind("bookworm", "systemd", "opspw")


@pytest.fixture(scope="module")
def operated(engine, nvidia_repository):
    with smoke.deployed(smoke.start(1, prefix="ops", repository=nvidia_repository, data=DATA,
                                    kinds=[SUDO_WITH_PASSWORD])) as deployment:
        yield deployment


def signed_up_and_approved(operated, target, browsers, name: str) -> tuple[HubPages, HubPages, str]:
    """Someone who signed up in their browser and whom the admin approved in theirs, logged in: both browsers, and
    the person's password."""
    ca, url = operated.ca_file(target), f"https://{NAME}/"
    password = f"{name}-{secrets.token_hex(8)}"
    person = HubPages(browsers([ca], {NAME: target.address}), url)
    assert "information has been sent to the admin" in person.signup(name, password)
    admin = HubPages(browsers([ca], {NAME: target.address}), url)
    admin.logged_in("admin", operated.read(target, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip())
    admin.authorize(name)
    person.logged_in(name, password)
    return person, admin, password


# A server's own question to the GPU service, as its JupyterLab's server extension asks it: from inside the server's
# container, with its own API token, at the service's port for servers.
VIEW_PROBE = """
import json, os, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[2] + sys.argv[1],
                                 headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]})
try:
    print(urllib.request.urlopen(request, timeout=10).read().decode())
except urllib.error.HTTPError as error:
    print(error.read().decode())
"""


def view_asked(operated, target, user: str, path: str) -> dict:
    return json.loads(operated.exec(target, "docker", "exec", f"jupyter-{user}", "python3", "-c", VIEW_PROBE, path,
                                    f"http://jupyterhub:{GPU_VIEW_PORT}/services/gpus/"))


def usage(hub, **query) -> dict:
    """The GPU-hours API, as an admin's script reads it."""
    response = hub.get("/services/gpus/api/usage", params={"since": 0, **query})
    assert response.status_code == 200, response.text[:300]
    return response.json() if query.get("format") != "csv" else response.text


def test_a_gpu_left_idle_goes_back_to_the_pool_with_a_browser_open_and_a_busy_one_runs_on_without_one(
        operated, engine, browsers):
    target = operated.targets[0]
    container = engine.containers.get(target.container_id)
    hub = operated.hub(target, server_hostname=NAME)
    url = f"https://{NAME}/"
    # Ann signs up and is approved in the browser: she will read what became of her server.
    ann, admin, _ = signed_up_and_approved(operated, target, browsers, "ann")
    for user in ("training", "cpuonly", "nextgpu"):
        hub.ensure_user(user)

    # Ann's kernel writes every two seconds (Jupyter sees her active); her GPU works until she opens JupyterLab.
    held = {}
    hub.start_server("ann")
    ann_gpu = hub.gpu_table()["servers"][0]["gpus"][0]
    set_gpu_work(container, ann_gpu, 60, 4096)
    kernel = hub.kernel("ann")
    try:
        assert kernel.evaluate(TICKER) == "'ticking'"
        # Ann opens JupyterLab: the status bar names her GPU with the stand-in's figures, and follows them.
        ann.browser.open(url + "user/ann/lab")
        lab = JupyterLab(ann.browser)
        lab.wait_until_loaded()
        lab.gpu_status(r"^GPU: Stand-in GPU · 60 % · 4\.0 / 16\.0 GiB$")
        assert not lab.gpu_status_warns()
        assert not lab.notifications("Jupyter news")  # a managed hub's JupyterLab asks nobody (jupyterlab_news)
        lab.open_gpu_panel()
        # A training run: its GPU at 90 %, nobody's browser or kernel output anywhere near it.
        hub.start_server("training")
        held = {server["user"]: server["gpus"] for server in hub.gpu_table()["servers"]}
        set_gpu_work(container, held["training"][0], 90, 12288)
        training_since = time.monotonic()
        hub.start_server("cpuonly", options={"gpu": "cpu"})
        assert held["ann"] == [ann_gpu] and held["ann"] != held["training"]
        # Each server reads its own GPU view with its own token, at the GPU service's port for servers: the training
        # run's server its own, and nobody else's.
        asked = until(lambda: (lambda view: view["status"]["text"].endswith("90 % · 12.0 / 16.0 GiB") and view)(
            view_asked(operated, target, "training", "api/me")), 30, "the training run's view of its work")
        assert asked["status"] == {"text": "GPU: Stand-in GPU · 90 % · 12.0 / 16.0 GiB", "level": "ok"}, asked
        assert asked["user"] == "training" and asked["stop"]["why"] == "gpu-max-age"
        assert view_asked(operated, target, "training", "api/users/ann") == {
            "status": 403, "message": "A token reads its own owner's GPU view only."}
        assert view_asked(operated, target, "cpuonly", "api/me")["status"]["text"] == "CPU only"

        # Ann's GPU goes idle while she looks at her JupyterLab.
        set_gpu_work(container, ann_gpu, 0, 2048)
        lab.gpu_status(r"^GPU: Stand-in GPU · 0 % · 2\.0 / 16\.0 GiB$")
        # Her GPU now idle, the panel says when the GPU culler will stop her server, and why.
        stop = ann.browser.wait_for('#jupyterhub-gpu-panel .jp-gpu-stop[data-why="gpu-idle"]', timeout=30)
        stop_at = float(stop.get_attribute("data-at"))
        assert re.match(r"Your GPU has been idle for [\d.]+ seconds: this server stops at \d\d:\d\d UTC unless the "
                        r"GPU gets work\. Keep it busy or save your work\.", stop.text), stop.text
        assert ann.browser.wait_for("#jupyterhub-gpu-panel polyline.jp-gpu-plot-utilization").get_attribute("points")
        print(f"\nthe GPU panel: {ann.browser.screenshot('jupyterlab-gpu-panel')}")
        # Two warnings before the stop (15 and 6 seconds ahead), each once, in JupyterLab's notifications; the
        # status item in the warning colour.
        lab.notification(r"^This server stops in less than a minute \(\d\d:\d\d UTC\): its GPU is idle\. Give it work "
                         r"or save your work\.", timeout=30)
        assert lab.gpu_status_warns()
        until(lambda: len(lab.notifications(r"its GPU is idle")) == 2, 30, "the second warning", interval=0.5)
        time.sleep(0.5)  # the toast slides in: the picture shows it whole
        print(f"the GPU warning: {ann.browser.screenshot('jupyterlab-gpu-warning')}")
        # Ann's GPU stayed under 5 % for gpu_idle_timeout (20 s): culled, her kernel's activity notwithstanding, at
        # the time the panel said (the culler looks every 5 s; the stop takes a moment).
        until(lambda: not hub.servers("ann"), 90, "the server with an idle GPU culled", interval=0.5)
        assert -1 <= time.time() - stop_at <= 5 + 8, time.time() - stop_at
        assert hub.servers("training") and hub.servers("cpuonly")

        # The GPU page, in the hub's look: the stand-in's figures for the training run's GPU, who holds each.
        row = f'#gpu-table tr[data-gpu="{held["training"][0]}"]'

        def shows_the_training_runs_work() -> bool:
            admin.browser.open(url + "services/gpus/")  # the page says what the last round read: load it again
            return admin.browser.wait_for(f"{row} .gpu-utilization").text == "90%"

        until(shows_the_training_runs_work, 60, "the training run's 90 % on the GPU page", interval=2)
        assert admin.browser.wait_for(f"{row} .gpu-memory").text == "12.0 GiB of 16.0 GiB"
        assert admin.browser.wait_for(f"{row} .gpu-holders").text == "training/"
        assert admin.browser.wait_for(f"{row} .gpu-model").text == "Stand-in GPU"
        # (Ann's GPU may already be free again by now: her cull below does not wait for this page.)
        assert re.match(r"[01] of 2 GPUs free", admin.browser.wait_for("#gpu-free").text)
        assert admin.browser.wait_for("nav.navbar").text.count("Home")  # the hub's navigation bar
        admin.browser.screenshot("gpu-page-light")
        admin.browser.click("#dark-theme-toggle")
        admin.browser.screenshot("gpu-page-dark")

        # The GPU-hours page: each person's budget, used and left this week; the admin grants Ann half an hour.
        admin.browser.open(url + "services/gpus/usage")
        row = admin.browser.wait_for('#budget-people tr[data-name="training"]').text
        assert re.fullmatch(r"training \(default rule\) 1 GPU-hour each per week 0\.0\d+ of 1 (0\.9\d+|1) renews "
                            r"Monday 00:00 UTC", row), row
        admin.browser.select("#grant-whom", "user")
        admin.browser.fill("#grant-name", "ann")
        admin.browser.fill("#grant-hours", "0.5")
        admin.browser.fill("#grant-note", "thesis deadline")
        admin.browser.click("#grant-submit")
        assert admin.browser.wait_for("#grant-done").text == "Granted 0.5 GPU-hours to ann."
        assert re.search(r"ann 0\.5 thesis deadline admin", admin.browser.wait_for("#budget-grants").text)
        assert " of 1.5 " in admin.browser.wait_for('#budget-people tr[data-name="ann"]').text
        print(f"\nthe admins' budgets: {admin.browser.screenshot('gpu-budgets-admin')}")

        table = hub.gpu_table()
        assert ann_gpu not in table["gpus"], table
        # The freed GPU is the one the next user gets.
        hub.start_server("nextgpu")
        assert {s["user"]: s["gpus"] for s in hub.gpu_table()["servers"]}["nextgpu"] == [ann_gpu]

        # Ann comes back to the hub's home page and reads why her server stopped.
        ann.browser.open(url + "hub/home")
        notice = ann.browser.wait_for("#gpu-cull-notice").text
        assert re.fullmatch(r"Your server was stopped at \d\d:\d\d UTC: its GPU was idle \(under 5% utilisation\) "
                            r"for \d+ seconds\. Your files are kept; start it again when you need it\.", notice), notice

        # The training run's GPU is busy, so no lack of activity stops it; its maximum age (90 s) does.
        until(lambda: not hub.servers("training"), 150, "the busy GPU server culled at its maximum age")
        assert time.monotonic() - training_since >= 60, "culled long before its maximum age, as if idle"
        # Idle both ways (no activity, GPU quiet): culled in its turn.
        until(lambda: not hub.servers("nextgpu"), 90, "the next user's idle GPU server culled")
        assert hub.servers("cpuonly"), "a CPU-only server was culled by the GPU culler"
    finally:
        kernel.close()
        if held.get("training"):
            set_gpu_work(container, held["training"][0], 0, 0)
    hub.stop_server("cpuonly")
    assert hub.gpu_table()["servers"] == []

    # Each hold and why it ended, in the GPU-hours record; CSV for a spreadsheet.
    holds = {hold["user"]: hold for hold in usage(hub)["holds"]}
    assert holds["ann"]["reason"].startswith("culled: its GPU was idle (under 5% utilisation) for ")
    assert holds["training"]["reason"] == "culled: it reached the maximum age of a GPU server (90 seconds)"
    assert holds["nextgpu"]["reason"].startswith("culled: its GPU was idle") and "cpuonly" not in holds
    assert 88 <= holds["training"]["ended"] - holds["training"]["started"] <= 130
    report = usage(hub)
    assert report["gpu_seconds"]["users"]["training"] == pytest.approx(
        holds["training"]["ended"] - holds["training"]["started"], abs=0.2)
    rows = usage(hub, format="csv").splitlines()
    assert rows[0] == ("user,server,group,node,gpus,started,ended,reason,gpu_seconds,kind,share,"
                       "weighted_gpu_seconds")
    # Whole stand-in GPUs: of their model's kind, each hour a whole GPU's.
    training = next(row for row in rows if row.startswith("training,")).split(",")
    assert training[9:11] == ["Stand-in GPU", "1"] and training[11] == training[8]
    assert holds["training"]["kind"] == "Stand-in GPU" and holds["training"]["share"] == 1
    # The GPU-hours page: the admin's, nobody else's.
    admin.browser.open(url + "services/gpus/usage")
    assert "training" in admin.browser.wait_for("#usage-users").text
    admin.browser.screenshot("gpu-usage-page")
    ann.browser.open(url + "services/gpus/usage")
    assert "403" in ann.browser.wait_for_text("Only the hub's admins see everyone's GPUs.")
    # Her own GPU page: the free count, nothing of anyone else.
    ann.browser.open(url + "services/gpus/")
    assert ann.browser.wait_for("#gpu-free").text.startswith("2 of 2 GPUs free")
    assert ann.browser.wait_for("#gpu-none-held").text == "You hold no GPU now."


def test_gina_shares_her_gpu_server_with_hal_who_edits_her_notebook_with_her_until_she_revokes(
        operated, engine, browsers):
    """Sharing a running server (JupyterHub's shares) from the sharing page, with real-time collaboration in it: the
    guest opens it from his home page, holds no server and no GPU of his own, and is refused once it is revoked; then
    shared with a group he is in, and revoked; then by a link."""
    target = operated.targets[0]
    container = engine.containers.get(target.container_id)
    hub = operated.hub(target, server_hostname=NAME)
    url = f"https://{NAME}/"
    gina, _, _ = signed_up_and_approved(operated, target, browsers, "gina")
    hal, _, _ = signed_up_and_approved(operated, target, browsers, "hal")
    hub.start_server("gina")
    (gpu,) = hub.gpu_table()["servers"][0]["gpus"]
    set_gpu_work(container, gpu, 70, 1024)  # at work: the GPU culler leaves her server be
    try:
        # Gina writes a notebook in her JupyterLab.
        gina.browser.open(url + "user/gina/lab")
        gina_lab = JupyterLab(gina.browser)
        gina_lab.wait_until_loaded()
        gina_lab.new_notebook()
        gina_lab.run_cell("x = 6 * 7; x", expect="42")
        gina_lab.save("together.ipynb")

        # She shares her server with Hal on the sharing page, reached from her home page.
        gina.browser.open(url + "hub/home")
        gina.browser.click("#gpu-share-link")
        assert "Your server is running" in gina.browser.wait_for("#share-server").text
        gina.browser.select("#share-whom", "user")
        gina.browser.fill("#share-name", "hal")
        gina.browser.click("#share-submit")
        assert gina.browser.wait_for("#share-said").text == "Your server is shared with user hal."
        assert gina.browser.wait_for('#share-list tr[data-user="hal"]')
        print(f"\nthe sharing page: {gina.browser.screenshot('share-page')}")

        # Gina goes back to her notebook; Hal opens her server from his home page, logs in to it as himself (JupyterHub
        # asks him once), and runs a cell of her notebook.
        gina_lab.open_notebook(url, "gina", "together.ipynb")
        hal.browser.open(url + "hub/home")
        assert hal.browser.wait_for("#gpu-shared-with-me").text == "Shared with you: gina's server."
        hal.browser.click("#gpu-shared-with-me a.gpu-shared-server")
        hal.browser._until(lambda driver: "/oauth2/authorize" in driver.current_url or "/user/gina/lab" in
                           driver.current_url, 90, "the share's authorization or Gina's JupyterLab")
        if "/oauth2/authorize" in hal.browser.url:
            hal.browser.click("form button[type=submit]")
        hal_lab = JupyterLab(hal.browser)
        hal_lab.open_notebook(url, "gina", "together.ipynb")
        hal_lab.wait_for_kernel()
        hal_lab.run_cell("print('hello from hal', x)", expect="hello from hal 42")
        # Gina sees his cell and its output appear in her notebook, without a reload: one document, edited together.
        gina.browser.wait_for_text("hello from hal 42", timeout=60, css=".jp-Notebook")
        assert any("print('hello from hal', x)" in source for source in gina_lab.cell_sources())
        print(f"the notebook edited together: {gina.browser.screenshot('collaboration-owner')} "
              f"{hal.browser.screenshot('collaboration-guest')}")
        # Hal holds no server and no GPU of his own; the GPU page counts Gina's hold only.
        assert hub.servers("hal") == {}
        assert [server["user"] for server in hub.gpu_table()["servers"]] == ["gina"]

        # Gina revokes; Hal's next requests are refused (within the half minute a server trusts what it was told).
        notebook = url + "user/gina/api/contents/together.ipynb"

        def refused() -> bool:
            hal.browser.open(notebook)
            said = hal.browser.text()
            return '"together.ipynb"' not in said and ("Forbidden" in said or "403" in said)

        assert not refused(), f"Hal reads Gina's notebook before she revokes: {hal.browser.text()[:300]}"
        gina.browser.open(url + "services/gpus/share")
        gina.browser.click('#share-list tr[data-user="hal"] .share-revoke')
        assert gina.browser.wait_for("#share-said").text == "User hal no longer has access to your server."
        assert gina.browser.wait_for("#share-none").text == "Nobody but you."

        until(refused, 45, "Hal refused at Gina's server", interval=2)
        # Shared with a group Hal is in instead: his home page offers her server again, until she revokes the group's.
        assert hub.api("POST", "/groups/reviewers", json={"users": ["hal"]}).status_code == 201
        gina.browser.select("#share-whom", "group")
        gina.browser.fill("#share-name", "reviewers")
        gina.browser.click("#share-submit")
        assert gina.browser.wait_for("#share-said").text == "Your server is shared with group reviewers."
        assert gina.browser.wait_for('#share-list tr[data-group="reviewers"]')
        hal.browser.open(url + "hub/home")
        assert hal.browser.wait_for("#gpu-shared-with-me").text == "Shared with you: gina's server."
        gina.browser.click('#share-list tr[data-group="reviewers"] .share-revoke')
        assert gina.browser.wait_for("#share-said").text == "Group reviewers no longer has access to your server."
        assert gina.browser.wait_for("#share-none").text == "Nobody but you."
        # A share link instead: shown once, to be given to whoever should have access; revoked with one click.
        gina.browser.click("#share-make-link")
        assert "/hub/accept-share?code=" in gina.browser.wait_for("#share-link").text
        gina.browser.click("#share-revoke-links")
        assert gina.browser.wait_for("#share-said").text == "Every share link of your server is revoked."
        hal.browser.open(url + "hub/home")
        assert not hal.browser.driver.find_elements("css selector", "#gpu-shared-with-me")
    finally:
        set_gpu_work(container, gpu, 0, 0)
        hub.stop_server("gina")


def test_a_scraper_reads_metrics_with_its_own_token_and_sees_the_gpu_pool_and_the_gpus_work(operated, engine):
    target = operated.targets[0]
    hub = operated.hub(target, server_hostname=NAME)
    token = operated.read(target, f"{INSTALL_DIR}/secrets/metrics_api_token").decode().strip()
    hub.ensure_user("metricsgpu")
    hub.start_server("metricsgpu")
    (gpu,) = {s["user"]: s["gpus"] for s in hub.gpu_table()["servers"]}["metricsgpu"]
    container = engine.containers.get(target.container_id)
    set_gpu_work(container, gpu, 37, 1024)
    try:
        scraper = HubClient(hub.url, hub.ca_file, token=token, server_hostname=NAME)
        gauge = re.compile(rf'jupyterhub_gpu_utilization_ratio{{gpu="{gpu}",node="[^"]+"}} 0\.37')
        scraped = until(lambda: (lambda r: r if gauge.search(r.text) else None)(scraper.get("/hub/metrics")), 60,
                        "the stand-in's 37 % in the utilisation gauge")
        metrics = scraped.text
        assert re.search(rf'jupyterhub_gpu_memory_used_bytes{{gpu="{gpu}",node="[^"]+"}} 1\.073741824e\+09', metrics)
        assert re.search(r'jupyterhub_gpu_memory_total_bytes\{gpu="GPU-[^"]+",node="[^"]+"\} 1\.7179869184e\+10',
                         metrics), [line for line in metrics.splitlines() if "total_bytes" in line]
        assert re.search(r'jupyterhub_gpu_seconds_total\{user="metricsgpu"\} [0-9.]+', metrics)
        # What is left of the week's GPU-hour: a server just started has used only seconds of it.
        assert re.search(r'jupyterhub_gpu_budget_remaining_hours\{group="",user="metricsgpu"\} 0\.9\d*', metrics)
        assert 'jupyterhub_gpu_pool_gpus{pool="jupyterhub-gpu"} 2.0' in metrics
        assert 'jupyterhub_gpu_pool_gpus_in_use{pool="jupyterhub-gpu"} 1.0' in metrics
        holders = [line for line in metrics.splitlines() if line.startswith("jupyterhub_gpu_holders{")]
        assert sorted(line.rsplit(" ", 1)[1] for line in holders) == ["0.0", "1.0"], holders
        assert "jupyterhub_running_servers" in metrics  # JupyterHub's own
        # That token reads nothing else; without a token, or with the tests' admin token, no metrics.
        assert scraper.api("GET", "/users").status_code == 403
        anonymous = HubClient(hub.url, hub.ca_file, server_hostname=NAME).get("/hub/metrics", allow_redirects=False)
        assert anonymous.status_code in (302, 403)
        assert hub.get("/hub/metrics").status_code == 403
    finally:
        set_gpu_work(container, gpu, 0, 0)
        hub.stop_server("metricsgpu")


def _container(engine, target, user: str) -> dict:
    code, output = engine.containers.get(target.container_id).exec_run(["docker", "inspect", f"jupyter-{user}"])
    assert code == 0, output
    return json.loads(output)[0]


def test_each_image_profile_holds_a_gpu_or_not_with_its_own_limits(operated, engine):
    target = operated.targets[0]
    hub = operated.hub(target, server_hostname=NAME)
    for user in ("profstd", "profgpu"):
        hub.ensure_user(user)
    hub.start_server("profstd", options={"image": "Standard"})
    hub.start_server("profgpu")  # a GPU user who picks nothing gets the GPU profile
    try:
        standard, gpu = _container(engine, target, "profstd"), _container(engine, target, "profgpu")
        assert "NVIDIA_VISIBLE_DEVICES=void" in standard["Config"]["Env"]
        assert not standard["HostConfig"]["DeviceRequests"]
        # The old set-up's one core and 2 GB for the standard profile.
        assert standard["HostConfig"]["Memory"] == 2 * 2**30
        assert standard["HostConfig"]["CpuQuota"] == 100_000  # one core of DockerSpawner's 100 ms period
        (request,) = gpu["HostConfig"]["DeviceRequests"]
        assert len(request["DeviceIDs"]) == 1 and gpu["HostConfig"]["ShmSize"] == 4 * 2**30
        assert gpu["Config"]["Image"].startswith("jupyterhub-gpu/profile-gpu-cuda:")
        assert standard["Config"]["Image"].startswith("jupyterhub-gpu/singleuser:")
        # In the GPU image the CUDA runtime loads and says its version; no device is needed for that.
        code, output = engine.containers.get(target.container_id).exec_run(
            ["docker", "exec", "-u", "jovyan", "jupyter-profgpu", "python3", "-c",
             "import ctypes, glob, sys; lib = ctypes.CDLL([f for p in sys.path for f in "
             "glob.glob(p + '/nvidia/cuda_runtime/lib/libcudart.so*')][0]); v = ctypes.c_int(); "
             "lib.cudaRuntimeGetVersion(ctypes.byref(v)); print(v.value)"])
        assert code == 0 and output.decode().strip() == "12090", output
        # JupyterLab's GPU view is in the CUDA profile's image as in the standard one, enabled, both parts.
        for user in ("profstd", "profgpu"):
            listed = operated.exec(target, "docker", "exec", "-u", "jovyan", f"jupyter-{user}", "sh", "-c",
                                   "jupyter labextension list 2>&1; jupyter server extension list 2>&1")
            assert re.search(r"jupyterhub-gpu-lab v0\.1\.0 \S*enabled\S* \S*OK", listed), listed
            assert re.search(r"jupyterhub_gpu_lab \S*enabled", listed), listed
    finally:
        for user in ("profstd", "profgpu"):
            hub.stop_server(user)


def test_the_gpu_check_gets_as_far_as_the_stand_in_allows_and_names_the_missing_link(operated):
    target = operated.targets[0]
    hub = operated.hub(target, server_hostname=NAME)
    run = run_deploy(operated.targets_file, deploy="deploy/gpu_check.py")
    assert run.returncode != 0 and "FAILED at" in run.log, run.log[-4000:]
    # Through the hub, a GPU and the image's CUDA runtime; then the stand-in's missing driver library, said so.
    assert "starting a throwaway GPU (CUDA) server for the user gpu-check" in run.log
    assert "GPU given by the hub: GPU-" in run.log
    assert "CUDA runtime in the image: libcudart 12.9" in run.log
    assert "FAILED at runtime: the driver's libcuda.so.1 is not in the container" in run.log
    assert "Traceback" not in run.log
    # The throwaway server is gone, and with it its GPU.
    assert not hub.servers("gpu-check")
    assert all(server["user"] != "gpu-check" for server in hub.gpu_table()["servers"])


def _rewritten(archive: Path, destination: Path, manifest_change=None, damage: str | None = None) -> Path:
    """A copy of ``archive`` with its manifest changed, or one member's last byte flipped."""
    with tarfile.open(archive) as source, tarfile.open(destination, "w") as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "manifest.json" and manifest_change:
                manifest = json.loads(data)
                manifest_change(manifest)
                data = json.dumps(manifest).encode()
            if member.name == damage:
                data = data[:-1] + bytes([data[-1] ^ 1])
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))
    return destination


def test_a_wiped_host_is_reprovisioned_from_its_backup_and_everyone_finds_their_work(
        operated, engine, nvidia_repository, browsers, tmp_path):
    source = operated.targets[0]
    hub = operated.hub(source, server_hostname=NAME)
    ca = operated.ca_file(source)
    url = f"https://{NAME}/"

    # Carol signs up and is approved in the browser, keeps a file and stays logged in. She teaches the course (staff);
    # Erin takes it (students); Dave is in neither group.
    carol, _, carol_password = signed_up_and_approved(operated, source, browsers, "carol")
    carol_cookies = {cookie["name"]: cookie["value"] for cookie in carol.browser.driver.get_cookies()}
    hub.ensure_user("erin")
    for group, member in (("staff", "carol"), ("students", "erin")):
        assert hub.api("POST", f"/groups/{group}", json={"users": [member]}).status_code in (201, 409)
    hub.start_server("carol", options={"gpu": "cpu"})
    hub.write_file("carol", "thesis.txt", "chapter one")
    hub.write_file("carol", f"{COURSE}/handout.txt", "week one: tensors")
    # Dave has an API token and a GPU server running when the backup is taken.
    hub.ensure_user("dave")
    token = hub.api("POST", "/users/dave/tokens", json={"note": "dave's script", "expires_in": 86400}).json()["token"]
    hub.start_server("dave")
    # His GPU busy (the culler's GPU-idle limit here is 20 s, shorter than the backup).
    dave_gpu = {server["user"]: server["gpus"] for server in hub.gpu_table()["servers"]}["dave"][0]
    set_gpu_work(engine.containers.get(source.container_id), dave_gpu, 90, 2048)
    hub.write_file("dave", "model.txt", "weights")
    hub.stop_server("carol")
    # The GPU-hours so far: every hold that ended (the culling test's), and Dave's, still open.
    closed_before = [hold for hold in usage(hub)["holds"] if hold["ended"]]
    # An admin's script grants Dave two GPU-hours this week, with the GPU service's API.
    granted = hub.request("POST", "/services/gpus/api/grants", json={"user": "dave", "hours": 2, "note": "paper"})
    assert granted.status_code == 201, granted.text
    (dave_hold,) = [hold for hold in usage(hub)["holds"] if hold["user"] == "dave" and hold["ended"] is None]

    # Meanwhile Erin swaps a file of her home for a link to the hub's cookie secret, as fast as she can (a link
    # followed between the packer's look at it and its read would put the secret into her archive), and the
    # host's other accounts could look at whatever the backup leaves readable on its way out.
    cookie_secret = operated.read(source, f"{INSTALL_DIR}/secrets/cookie_secret").strip()
    admin_password = operated.read(source, f"{INSTALL_DIR}/secrets/admin-password-admin").strip()
    hub.start_server("erin", options={"gpu": "cpu"})
    # The course's folder: Erin reads what Carol wrote and may not write there; Dave has no such folder.
    assert hub.read_file("erin", f"{COURSE}/handout.txt") == "week one: tensors"
    refused = hub.request("PUT", f"/user/erin/api/contents/{COURSE}/mine.txt",
                          json={"type": "file", "format": "text", "content": "answers"})
    # (The folder is mounted read-only for her: the kernel refuses the write, and JupyterLab says so.)
    assert refused.status_code == 500 and "Read-only file system" in refused.text, (refused.status_code, refused.text)
    assert operated.output(source, "docker exec jupyter-dave sh -c 'test -e /home/jovyan/shared && echo present "
                                   "|| echo absent'") == "absent"
    operated.run(source, "docker exec -d -u 1000 -w /home/jovyan jupyter-erin sh -c " + shlex.quote(SWAPPER))
    watch = TransferWatch(operated, source)
    watch.start()
    started = time.monotonic()
    backed_up = run_deploy(operated.targets_file, deploy="deploy/backup.py",
                           env={"JUPYTERHUB_GPU_BACKUPS": str(tmp_path)})
    backup_seconds, backed_up_at = time.monotonic() - started, time.time()
    seen, left = watch.seen(), watch.left_behind()
    swaps = operated.output(source,
                            "docker exec -u 1000 jupyter-erin sh -c 'kill $(cat /tmp/swapper.pid); cat /tmp/swaps'")
    set_gpu_work(engine.containers.get(source.container_id), dave_gpu, 0, 0)
    assert backed_up.returncode == 0, backed_up.log[-4000:]
    (archive,) = tmp_path.glob("*.tar")
    with tarfile.open(archive) as opened:
        manifest = json.load(opened.extractfile("manifest.json"))
        for name in manifest["volumes"]:
            with tarfile.open(fileobj=opened.extractfile(f"volumes/{name}.tar.gz")) as home:
                for member in home:
                    content = home.extractfile(member).read() if member.isfile() else member.linkname.encode()
                    assert cookie_secret not in content, f"{name}: {member.name} holds the cookie secret"
    assert int(swaps) > 100, f"Erin's home changed under the packer {swaps} times only"
    # The archive and the secrets in it crossed where no other account of the host could read them.
    assert seen.events, "the watcher saw the backup's files come and go"
    for secret in (cookie_secret, admin_password):
        assert seen.exposed_holding(secret) == []
    exposed_archives = [path for kind, number, path in seen.events
                        if kind == "exposed" and tarfile.is_tarfile(io.BytesIO(seen.copies[number]))]
    assert exposed_archives == [], "another account could read the archive while it crossed"
    assert pyinfra_staging(f"{INSTALL_DIR}/backups/{archive.name}") not in seen.paths()
    assert left == "", f"left behind on the host: {left}"
    assert manifest["versions"]["jupyterhub"] == "6.1.1" and manifest["source"] == source.address
    assert {"jupyterhub-gpu-user-carol", "jupyterhub-gpu-user-dave", "jupyterhub-gpu-shared-course-101"} <= set(
        manifest["volumes"])
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert {"hub/jupyterhub.sqlite", "hub/gpu-usage.sqlite", "host/install.tar.gz"} <= set(manifest["files"])
    # The archive on the host was removed once it was safe on the controller; the hub ran on.
    _, left = engine.containers.get(source.container_id).exec_run(["ls", "-A", f"{INSTALL_DIR}/backups"])
    assert left.decode().strip() == "", left
    assert hub.servers("dave")
    ca_bytes = operated.read(source, f"{INSTALL_DIR}/ca/ca.crt")
    print(f"backup: {backup_seconds:.1f} s, archive {archive.stat().st_size / 2**20:.2f} MiB")

    # The WSL distribution is unregistered: the host and everything on it is gone.
    remove_targets(engine, operated.targets)
    fresh_started = time.monotonic()
    (fresh,) = start_targets(engine, 1, prefix="reprov", gpus=True, kinds=[SUDO_WITH_PASSWORD])
    try:
        fresh.data.update({**nvidia_repository.inventory_data(), "image_profiles": smoke.GPU_TEST_PROFILES, **DATA})
        targets_file = write_inventory_file([fresh], tmp_path / "fresh.json")
        fresh_deployment = smoke.Deployment(engine, [fresh], targets_file, [])

        # A damaged archive and one from a newer JupyterHub are refused before anything changes.
        damaged = _rewritten(archive, tmp_path / "damaged.tar", damage="volumes/jupyterhub-gpu-user-carol.tar.gz")
        refused = run_deploy(targets_file, deploy="deploy/restore.py", env={"JUPYTERHUB_GPU_ARCHIVE": str(damaged)})
        assert refused.returncode != 0 and "does not match its sha256" in refused.log, refused.log[-3000:]
        assert "Traceback" not in refused.log
        newer = _rewritten(archive, tmp_path / "newer.tar",
                           manifest_change=lambda m: m["versions"].update(jupyterhub="99.0.0"))
        refused = run_deploy(targets_file, deploy="deploy/restore.py", env={"JUPYTERHUB_GPU_ARCHIVE": str(newer)})
        assert refused.returncode != 0 and "newer than the 6.1.1 this deploy installs" in refused.log
        code, _ = engine.containers.get(fresh.container_id).exec_run(["test", "-e", INSTALL_DIR])
        assert code != 0, "a refused restore changed the host"

        started = time.monotonic()
        restored = run_deploy(targets_file, deploy="deploy/restore.py", env={"JUPYTERHUB_GPU_ARCHIVE": str(archive)})
        restore_seconds = time.monotonic() - started
        assert restored.returncode == 0, restored.log[-5000:]
        again = fresh_deployment.deploy()
        assert again.returncode == 0 and not again.totals.get("success"), again.changed_operations()

        # The same CA and admin password; Dave's token answers; Carol's browser session is still valid.
        assert fresh_deployment.read(fresh, f"{INSTALL_DIR}/ca/ca.crt") == ca_bytes
        new_hub = fresh_deployment.hub(fresh, ca_file=ca, server_hostname=NAME)
        me = HubClient(new_hub.url, ca, token=token, server_hostname=NAME).api("GET", "/user")
        assert me.status_code == 200 and me.json()["name"] == "dave"
        browser_session = HubClient(new_hub.url, ca, server_hostname=NAME)
        browser_session.session.cookies.update(carol_cookies)
        home = browser_session.get("/hub/home", allow_redirects=False)
        assert home.status_code == 200 and "carol" in home.text
        # Dave's server did not come with the host: the hub knows it stopped, and no GPU is held.
        assert new_hub.gpu_table()["servers"] == []
        # The GPU-hours came with the backup: every hold that had ended, and Dave's, ended at its last sign of
        # life before the backup (the hub cannot know when after it the old host went).
        holds = usage(new_hub)["holds"]
        assert [hold for hold in holds if hold in closed_before] == closed_before
        (dave_after,) = [hold for hold in holds if hold["user"] == "dave"]
        assert dave_after["started"] == dave_hold["started"] and dave_after["reason"] == "ended while the hub was down"
        # (The database is copied during the backup: a poll then may still have seen the server alive.)
        assert dave_hold["started"] <= dave_after["ended"] <= backed_up_at
        # And the grant with them.
        grants = new_hub.get("/services/gpus/api/grants", params={"since": 0}).json()["grants"]
        assert [(g["user"], g["hours"], g["note"]) for g in grants if g["user"] == "dave"] == [("dave", 2.0, "paper")]
        # Everyone logs in and finds their files.
        carol_again = HubPages(browsers([ca], {NAME: fresh.address}), url)
        carol_again.logged_in("carol", carol_password)
        new_hub.start_server("carol", options={"gpu": "cpu"})
        assert new_hub.read_file("carol", "thesis.txt") == "chapter one"
        # The course's folder came back, and Carol may still write it (her group came with the hub's database).
        assert new_hub.read_file("carol", f"{COURSE}/handout.txt") == "week one: tensors"
        new_hub.write_file("carol", f"{COURSE}/handout.txt", "week two: gradients")
        new_hub.start_server("dave")
        assert new_hub.read_file("dave", "model.txt") == "weights"
        assert len(new_hub.gpu_table()["gpus"]) == 1
        everyone_back = time.monotonic() - fresh_started
        print(f"restore: {restore_seconds:.1f} s; fresh target to everyone back: {everyone_back:.1f} s")

        # Restoring the same archive again changes nothing: it cannot overwrite newer work.
        new_hub.write_file("carol", "thesis.txt", "chapter two")
        twice = run_deploy(targets_file, deploy="deploy/restore.py", env={"JUPYTERHUB_GPU_ARCHIVE": str(archive)})
        assert twice.returncode == 0 and not twice.totals.get("success"), twice.changed_operations()
        assert new_hub.read_file("carol", "thesis.txt") == "chapter two"
    except Exception:
        print(engine.containers.get(fresh.container_id).exec_run(
            ["sh", "-c", "docker ps -a; docker logs --tail 60 jupyterhub 2>&1; "
             "for c in $(docker ps -aq --filter label=gpudockerspawner.owner); do docker logs --tail 30 $c 2>&1; done"]
        ).output.decode(errors="replace"))
        raise
    finally:
        remove_targets(engine, [fresh])
