"""Fixtures of the test bed: a real Docker engine, throwaway SSH targets, and a hub deployed onto them."""

from __future__ import annotations

import pytest

from tests.testbed import engine as testbed_engine
from tests.testbed import smoke
from tests.testbed.targets import remove_all, remove_targets, start_targets


@pytest.fixture(scope="session")
def engine():
    client = testbed_engine.client()
    remove_all(client)  # what an interrupted earlier run left behind
    return client


@pytest.fixture(scope="session")
def deployment(engine):
    """Two fresh targets with the hub deployed by the CI smoke path: deployed, then deployed again.
    Their engines run GPU device requests (the target image carries the stand-in NVIDIA hook)."""
    deployment = smoke.start(2, data={"gpu_ids": ["0", "1"]}, prefix="hub")
    try:
        smoke.deploy_twice(deployment)
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


@pytest.fixture
def fresh_target(engine):
    (target,) = start_targets(engine, 1, prefix="fresh")
    yield target
    remove_targets(engine, [target])
