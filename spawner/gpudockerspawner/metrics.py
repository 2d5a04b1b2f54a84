"""GPU pool gauges on the hub's own ``/hub/metrics``: read from the pools when Prometheus scrapes, so they
cannot drift from what the spawner hands out."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from gpudockerspawner.pool import GPUPool


class PoolCollector:
    """``jupyterhub_gpu_pool_gpus``, ``jupyterhub_gpu_pool_gpus_in_use`` and ``jupyterhub_gpu_holders``
    (servers holding each GPU), labelled by pool."""

    def __init__(self, pools: Callable[[], Iterable[tuple[str, GPUPool]]]):
        self.pools = pools

    def collect(self):
        total = GaugeMetricFamily("jupyterhub_gpu_pool_gpus", "GPUs in the pool that GPUDockerSpawner hands out",
                                  labels=["pool"])
        in_use = GaugeMetricFamily("jupyterhub_gpu_pool_gpus_in_use", "GPUs held by at least one server",
                                   labels=["pool"])
        holders = GaugeMetricFamily("jupyterhub_gpu_holders", "Servers holding each GPU", labels=["pool", "gpu"])
        for label, pool in self.pools():
            table = pool.table()
            total.add_metric([label], len(table))
            in_use.add_metric([label], sum(1 for owners in table.values() if owners))
            for gpu, owners in table.items():
                holders.add_metric([label, gpu], len(owners))
        yield from (total, in_use, holders)


_registered: PoolCollector | None = None


def register(pools: Callable[[], Iterable[tuple[str, GPUPool]]]) -> None:
    """Add the pool gauges to the hub's registry, once per process."""
    global _registered
    if _registered is None:
        _registered = PoolCollector(pools)
        REGISTRY.register(_registered)
