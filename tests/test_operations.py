"""Operating a deployed hub over time: idle GPUs go back to the pool through the idle culler, and a Prometheus
scraper reads the hub's metrics (the GPU pool's among them) with a token that may read nothing else.

One GPU target (two stand-in GPUs) deployed twice, with limits short enough to watch: a GPU server idle for
20 s is stopped, a busy one after 90 s, a CPU-only one not within the test."""

from __future__ import annotations

import time

import pytest
import requests

from testbed import smoke

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


@pytest.fixture(scope="module")
def operated(engine, nvidia_repository):
    with smoke.deployed(smoke.start(1, prefix="ops", repository=nvidia_repository,
                                    data={**LIMITS, "metrics_token": True})) as deployment:
        yield deployment


def wait_for(condition, timeout: float, what: str, every: float = 1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"not within {timeout}s: {what}")


def test_an_idle_gpu_goes_back_to_the_pool_and_a_busy_one_only_at_its_maximum_age(operated):
    target = operated.targets[0]
    hub = operated.hub(target)
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
        wait_for(lambda: not hub.servers("idlegpu"), 90, "the idle GPU server culled")
        assert hub.servers("busygpu") and hub.servers("cpuonly")
        table = hub.gpu_table()
        assert idle_gpu not in table["gpus"], table
        assert [server["user"] for server in table["servers"]] == ["busygpu", "cpuonly"]
        # The freed GPU is the one the next user gets.
        hub.start_server("nextgpu")
        next_held = {server["user"]: server["gpus"] for server in hub.gpu_table()["servers"]}["nextgpu"]
        assert next_held == [idle_gpu]

        # Busy (its kernel writes every two seconds), so culled only at its maximum age of 90 s.
        wait_for(lambda: not hub.servers("busygpu"), 150, "the busy GPU server culled at its maximum age")
        assert time.monotonic() - busy_since >= 60, "culled long before its maximum age, as if idle"
        assert hub.servers("cpuonly"), "a CPU-only server was culled by the GPU culler"
    finally:
        kernel.close()
    for user in ("nextgpu", "cpuonly"):
        hub.stop_server(user)
    assert hub.gpu_table()["servers"] == []


def test_a_scraper_reads_metrics_with_its_own_token_and_sees_the_gpu_pool(operated):
    target = operated.targets[0]
    hub = operated.hub(target)
    token = operated.read(target, f"{INSTALL_DIR}/secrets/metrics_api_token").decode().strip()
    hub.ensure_user("metricsgpu")
    hub.start_server("metricsgpu")
    try:
        scraped = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"Bearer {token}"},
                               verify=hub.ca_file, timeout=30)
        assert scraped.status_code == 200, scraped.text[:500]
        metrics = scraped.text
        assert 'jupyterhub_gpu_pool_gpus{pool="jupyterhub-gpu"} 2.0' in metrics
        assert 'jupyterhub_gpu_pool_gpus_in_use{pool="jupyterhub-gpu"} 1.0' in metrics
        holders = [line for line in metrics.splitlines() if line.startswith("jupyterhub_gpu_holders{")]
        assert sorted(line.rsplit(" ", 1)[1] for line in holders) == ["0.0", "1.0"], holders
        assert "jupyterhub_running_servers" in metrics  # JupyterHub's own
        # That token reads nothing else; without a token, or with the tests' admin token, no metrics.
        users = requests.get(f"{hub.url}/hub/api/users", headers={"Authorization": f"Bearer {token}"},
                             verify=hub.ca_file, timeout=30)
        assert users.status_code == 403
        anonymous = requests.get(f"{hub.url}/hub/metrics", verify=hub.ca_file, timeout=30,
                                 allow_redirects=False)
        assert anonymous.status_code in (302, 403)
        assert hub.get("/hub/metrics").status_code == 403
    finally:
        hub.stop_server("metricsgpu")
