"""Operating a deployed hub over time: idle GPUs go back to the pool through the idle culler, a Prometheus
scraper reads the hub's metrics (the GPU pool's among them) with a token that may read nothing else, and a
wiped host is reprovisioned from a backup (back up, destroy, fresh host, restore, deploy).

One GPU target (two stand-in GPUs) deployed twice, with limits short enough to watch: a GPU server idle for
20 s is stopped, a busy one after 90 s, a CPU-only one not within the test. The reprovisioning test comes
last: it destroys that target. The target, and the fresh one that replaces it, are Debian 12 booted by systemd
and reached as a user whose sudo asks for a password (pyinfra's _sudo_password): the deploy, the backup's download
and the restore's upload all go through sudo."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from pathlib import Path

import pytest

from testbed import smoke
from testbed.browser import HubPages
from testbed.deploy import run_deploy
from testbed.hub import HubClient
from testbed.targets import HostKind, remove_targets, start_targets, write_inventory_file
from testbed.wait import until

pytestmark = pytest.mark.slow

INSTALL_DIR = smoke.INSTALL_DIR
LIMITS = {"gpu_idle_timeout": 20, "gpu_max_age": 90, "cull_every": 5, "activity_interval": 5}
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


# The hub's name, not the host's address, is in its certificate: the reprovisioned host has another address,
# and browsers that trusted the local CA keep trusting the hub.
NAME = "jupyter.lab.test"
DATA = {**LIMITS, "metrics_token": True, "hub_names": [NAME], "hub_addresses": ["127.0.0.1"]}
SUDO_WITH_PASSWORD = HostKind("bookworm", "systemd", "opspw")


@pytest.fixture(scope="module")
def operated(engine, nvidia_repository):
    with smoke.deployed(smoke.start(1, prefix="ops", repository=nvidia_repository, data=DATA,
                                    kinds=[SUDO_WITH_PASSWORD])) as deployment:
        yield deployment


def test_an_idle_gpu_goes_back_to_the_pool_and_a_busy_one_only_at_its_maximum_age(operated):
    target = operated.targets[0]
    hub = operated.hub(target, server_hostname=NAME)
    for user in ("idlegpu", "busygpu", "cpuonly", "nextgpu"):
        hub.ensure_user(user)
    hub.start_server("busygpu")
    kernel = hub.kernel("busygpu")
    try:
        assert kernel.evaluate(TICKER) == "'ticking'"
        busy_since = time.monotonic()
        hub.start_server("cpuonly", options={"gpu": "cpu"})
        hub.start_server("idlegpu")
        table = hub.gpu_table()
        held = {server["user"]: server["gpus"] for server in table["servers"]}
        assert len(held["idlegpu"]) == 1 and held["idlegpu"] != held["busygpu"] and held["cpuonly"] == []
        idle_gpu = held["idlegpu"][0]

        # 20 s idle, seen within the culler's and the activity reports' periods.
        until(lambda: not hub.servers("idlegpu"), 90, "the idle GPU server culled")
        assert hub.servers("busygpu") and hub.servers("cpuonly")
        table = hub.gpu_table()
        assert idle_gpu not in table["gpus"], table
        assert [server["user"] for server in table["servers"]] == ["busygpu", "cpuonly"]
        # The freed GPU is the one the next user gets.
        hub.start_server("nextgpu")
        next_held = {server["user"]: server["gpus"] for server in hub.gpu_table()["servers"]}["nextgpu"]
        assert next_held == [idle_gpu]

        # Busy (its kernel writes every two seconds), so culled only at its maximum age of 90 s.
        until(lambda: not hub.servers("busygpu"), 150, "the busy GPU server culled at its maximum age")
        assert time.monotonic() - busy_since >= 60, "culled long before its maximum age, as if idle"
        assert hub.servers("cpuonly"), "a CPU-only server was culled by the GPU culler"
    finally:
        kernel.close()
    for user in ("nextgpu", "cpuonly"):
        hub.stop_server(user)
    assert hub.gpu_table()["servers"] == []


def test_a_scraper_reads_metrics_with_its_own_token_and_sees_the_gpu_pool(operated):
    target = operated.targets[0]
    hub = operated.hub(target, server_hostname=NAME)
    token = operated.read(target, f"{INSTALL_DIR}/secrets/metrics_api_token").decode().strip()
    hub.ensure_user("metricsgpu")
    hub.start_server("metricsgpu")
    try:
        scraper = HubClient(hub.url, hub.ca_file, token=token, server_hostname=NAME)
        scraped = scraper.get("/hub/metrics")
        assert scraped.status_code == 200, scraped.text[:500]
        metrics = scraped.text
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
    admin_password = operated.read(source, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip()

    # Carol signs up and is approved in the browser, keeps a file and stays logged in.
    carol_password = f"carol-{secrets.token_hex(8)}"
    carol = HubPages(browsers([ca], {NAME: source.address}), url)
    assert "information has been sent to the admin" in carol.signup("carol", carol_password)
    admin = HubPages(browsers([ca], {NAME: source.address}), url)
    admin.logged_in("admin", admin_password)
    admin.authorize("carol")
    carol.logged_in("carol", carol_password)
    carol_cookies = {cookie["name"]: cookie["value"] for cookie in carol.browser.driver.get_cookies()}
    hub.start_server("carol", options={"gpu": "cpu"})
    hub.write_file("carol", "thesis.txt", "chapter one")
    # Dave has an API token and a GPU server running when the backup is taken.
    hub.ensure_user("dave")
    token = hub.api("POST", "/users/dave/tokens", json={"note": "dave's script", "expires_in": 86400}).json()["token"]
    hub.start_server("dave")
    hub.write_file("dave", "model.txt", "weights")
    hub.stop_server("carol")

    started = time.monotonic()
    backed_up = run_deploy(operated.targets_file, deploy="deploy/backup.py",
                           env={"JUPYTERHUB_GPU_BACKUPS": str(tmp_path)})
    backup_seconds = time.monotonic() - started
    assert backed_up.returncode == 0, backed_up.log[-4000:]
    (archive,) = tmp_path.glob("*.tar")
    with tarfile.open(archive) as opened:
        manifest = json.load(opened.extractfile("manifest.json"))
    assert manifest["versions"]["jupyterhub"] == "6.1.1" and manifest["source"] == source.address
    assert {"jupyterhub-gpu-user-carol", "jupyterhub-gpu-user-dave"} <= set(manifest["volumes"])
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert "hub/jupyterhub.sqlite" in manifest["files"] and "host/install.tar.gz" in manifest["files"]
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
        # Everyone logs in and finds their files.
        carol_again = HubPages(browsers([ca], {NAME: fresh.address}), url)
        carol_again.logged_in("carol", carol_password)
        new_hub.start_server("carol", options={"gpu": "cpu"})
        assert new_hub.read_file("carol", "thesis.txt") == "chapter one"
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
