"""The GPU culler's arbiter and the culler services it runs in; the GPU pool gauges."""

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gpudockerspawner import culling
from gpudockerspawner.metrics import PoolCollector
from gpudockerspawner.pool import GPUPool


def server(gpus=(), started_ago: float = 60) -> dict:
    started = datetime.now(timezone.utc) - timedelta(seconds=started_ago)
    return {"state": {"gpus": list(gpus)} if gpus else {}, "started": started.isoformat().replace("+00:00", "Z")}


def test_the_gpu_arbiter_culls_idle_gpu_servers_only():
    idle = timedelta(seconds=700)
    assert culling.gpu_arbiter(inactive=idle, inactive_limit=600, server=server(["0"]))
    assert not culling.gpu_arbiter(inactive=idle, inactive_limit=600, server=server())
    assert not culling.gpu_arbiter(inactive=timedelta(seconds=10), inactive_limit=600, server=server(["0"]))
    # A server whose state the culler may not read counts as CPU-only: never culled by the GPU culler.
    assert not culling.gpu_arbiter(inactive=idle, inactive_limit=600, server={"started": server()["started"]})


def test_the_gpu_arbiter_culls_busy_gpu_servers_past_their_maximum_age(monkeypatch):
    busy = timedelta(seconds=1)
    monkeypatch.setenv(culling.GPU_MAX_AGE_ENV, "3600")
    assert culling.gpu_arbiter(inactive=busy, inactive_limit=600, server=server(["0"], started_ago=3700))
    assert not culling.gpu_arbiter(inactive=busy, inactive_limit=600, server=server(["0"], started_ago=3500))
    assert not culling.gpu_arbiter(inactive=busy, inactive_limit=600, server=server([], started_ago=3700))
    monkeypatch.setenv(culling.GPU_MAX_AGE_ENV, "0")
    assert not culling.gpu_arbiter(inactive=busy, inactive_limit=600, server=server(["0"], started_ago=10**6))


@pytest.mark.parametrize("limits, names", [
    ({}, ["idle-culler"]),
    ({"gpu_idle_timeout": 600}, ["idle-culler", "gpu-idle-culler"]),
    ({"idle_timeout": 0, "gpu_max_age": 7200}, ["gpu-idle-culler"]),
    ({"idle_timeout": 0}, []),
])
def test_a_culler_runs_for_each_limit_that_is_set(limits, names):
    services = culling.hub_services(**limits)
    assert [service["name"] for service in services] == names
    for service, role in zip(services, culling.hub_roles(services)):
        assert role["services"] == [service["name"]]
        # Least privilege: reading servers' state only where GPU servers must be told apart.
        assert ("admin:server_state" in role["scopes"]) == (service["name"] == "gpu-idle-culler")
        assert "admin:users" not in role["scopes"]


def test_the_gpu_culler_takes_its_maximum_age_from_its_arbiter_not_from_the_culler():
    (gpu,) = culling.hub_services(idle_timeout=0, gpu_idle_timeout=300, gpu_max_age=7200)
    assert "--max-age=0" in gpu["command"] and "--timeout=300" in gpu["command"]
    assert gpu["environment"][culling.GPU_MAX_AGE_ENV] == "7200"
    assert f"--config={culling.GPU_CONFIG_FILE}" in gpu["command"] and culling.GPU_CONFIG_FILE.is_file()


def test_the_pool_gauges_follow_the_pool():
    pool = GPUPool(["0", "1", "2"], users_per_gpu=2)
    pool.allocate("ann/", 1)
    pool.allocate("bob/", 1)
    pool.allocate("cat/", 1)
    registry = CollectorRegistry()
    registry.register(PoolCollector(lambda: [("jupyterhub", pool)]))
    text = generate_latest(registry).decode()
    assert 'jupyterhub_gpu_pool_gpus{pool="jupyterhub"} 3.0' in text
    # Least loaded first, ties in pool order: one server on each GPU.
    assert 'jupyterhub_gpu_pool_gpus_in_use{pool="jupyterhub"} 3.0' in text
    pool.release("ann/")
    pool.release("bob/")
    text = generate_latest(registry).decode()
    assert 'jupyterhub_gpu_pool_gpus_in_use{pool="jupyterhub"} 1.0' in text
    assert sorted(line for line in text.splitlines() if line.startswith("jupyterhub_gpu_holders{")) == [
        'jupyterhub_gpu_holders{gpu="0",pool="jupyterhub"} 0.0',
        'jupyterhub_gpu_holders{gpu="1",pool="jupyterhub"} 0.0',
        'jupyterhub_gpu_holders{gpu="2",pool="jupyterhub"} 1.0',
    ]
