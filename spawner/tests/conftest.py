"""What the spawner's tests share: a hub user as the spawner sees one, and a hub process of each test's own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpudockerspawner.pool import GPUPool
from gpudockerspawner.spawner import GPUDockerSpawner, HubProcess


def hub_user(name: str = "ann", groups=()) -> SimpleNamespace:
    """A hub user as a spawner reads it: name, groups (each with a name), server URL, id."""
    return SimpleNamespace(name=name, groups=[SimpleNamespace(name=g) for g in groups], url=f"/user/{name}/", id=1,
                           escaped_name=name)


@pytest.fixture(autouse=True)
def hub_process_of_this_test(monkeypatch) -> HubProcess:
    """Each test's own pools, lines, ledgers and usage records, as a fresh hub process has them; its pools start
    empty (no engine to rebuild them from running containers)."""
    shared = HubProcess()
    monkeypatch.setattr(GPUDockerSpawner, "shared", shared)
    monkeypatch.setattr(GPUDockerSpawner, "_rebuild_pool", lambda self: GPUPool(
        self.gpu_ids, self.users_per_gpu, {gpu: self.kind_of(gpu) for gpu in self.gpu_ids}))
    return shared
