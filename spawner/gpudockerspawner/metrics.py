"""GPU gauges on the hub's own ``/hub/metrics``: read when Prometheus scrapes (from the pools, the GPU service's
figures and the usage record), so they cannot drift from what the spawner hands out and the driver reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gpudockerspawner.figures import read_snapshot
from gpudockerspawner.pool import GPUPool
from gpudockerspawner.usage import UsageLog, seconds_by_user


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


class FiguresCollector:
    """The GPUs' work, from the GPU service's last snapshot (none where it is stale: a sampler that stopped says
    nothing of now) and from the usage record:

    - ``jupyterhub_gpu_utilization_ratio{gpu,node}``, ``jupyterhub_gpu_memory_used_bytes{gpu,node}``,
      ``jupyterhub_gpu_memory_total_bytes{gpu,node}``;
    - ``jupyterhub_gpu_seconds_total{user}``: GPU-seconds held, every hold since the record began;
    - ``jupyterhub_gpu_share_seconds_total{user}``: the same, each GPU's seconds times its share of a whole GPU (a
      MIG slice's part), which compares a slice with a whole GPU."""

    def __init__(self, figures_file: str, usage_db: str):
        self.figures_file, self.usage_db = figures_file, usage_db

    def collect(self):
        labels = ["gpu", "node"]
        utilization = GaugeMetricFamily("jupyterhub_gpu_utilization_ratio", "GPU utilisation, 0 to 1, as the "
                                        "driver last reported it", labels=labels)
        used = GaugeMetricFamily("jupyterhub_gpu_memory_used_bytes", "GPU memory in use", labels=labels)
        total = GaugeMetricFamily("jupyterhub_gpu_memory_total_bytes", "GPU memory", labels=labels)
        snapshot = read_snapshot(self.figures_file) if self.figures_file else None
        if snapshot:
            for figure in snapshot["gpus"].values():
                names = [figure["uuid"], figure.get("node") or ""]
                if figure.get("utilization") is not None:
                    utilization.add_metric(names, figure["utilization"] / 100)
                if figure.get("memory_used") is not None:
                    used.add_metric(names, figure["memory_used"])
                if figure.get("memory_total") is not None:
                    total.add_metric(names, figure["memory_total"])
        seconds = CounterMetricFamily("jupyterhub_gpu_seconds", "GPU-seconds held by each user's servers",
                                      labels=["user"])
        shares = CounterMetricFamily("jupyterhub_gpu_share_seconds", "GPU-seconds held by each user's servers, "
                                     "each GPU's times its share of a whole GPU", labels=["user"])
        if self.usage_db:
            for user, value in seconds_by_user(self.usage_db).items():
                seconds.add_metric([user], value)
            for user, value in seconds_by_user(self.usage_db, weighted=True).items():
                shares.add_metric([user], value)
        yield from (utilization, used, total, seconds, shares)


_figures: FiguresCollector | None = None


def register_figures(figures_file: str, usage_db: str) -> None:
    """Add the figures' gauges and the GPU-seconds counter to the hub's registry, once per process."""
    global _figures
    if _figures is None:
        _figures = FiguresCollector(figures_file, usage_db)
        REGISTRY.register(_figures)


class BudgetCollector:
    """``jupyterhub_gpu_budget_remaining_hours{user,group}``: GPU-hours left in the current period, of each person
    who held a GPU in the last 31 days (``group``: the rule of their latest hold) and, with ``user=""``, of each
    group's budget together; negative where a grace let a server run past the end."""

    def __init__(self, usage_db: str, budgets):
        self.usage, self.budgets = UsageLog(usage_db), budgets

    def collect(self):
        left = GaugeMetricFamily("jupyterhub_gpu_budget_remaining_hours", "GPU-hours left in the current budget "
                                 "period (user=\"\": a group's budget together)", labels=["user", "group"])
        people, groups = self.budgets.gauges(self.usage, time.time())
        for user, (group, hours) in people.items():
            left.add_metric([user, group], hours)
        for group, hours in groups.items():
            left.add_metric(["", group], hours)
        yield left


_budgets: BudgetCollector | None = None


def register_budgets(usage_db: str, budgets) -> None:
    """Add the budget gauges to the hub's registry, once per process (where there are budgets)."""
    global _budgets
    if _budgets is None and usage_db and budgets.any:
        _budgets = BudgetCollector(usage_db, budgets)
        REGISTRY.register(_budgets)
