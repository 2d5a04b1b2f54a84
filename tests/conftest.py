"""Fixtures of the test bed: a real Docker engine, throwaway SSH targets, and a hub deployed onto them."""

from __future__ import annotations

import pytest

from tests.testbed import engine as testbed_engine
from tests.testbed import smoke
from tests.testbed.aptrepo import Repository
from tests.testbed.targets import bridge_gateway, remove_all, remove_targets, start_targets


@pytest.fixture(scope="session")
def engine():
    client = testbed_engine.client()
    remove_all(client)  # what an interrupted earlier run left behind
    return client


@pytest.fixture(scope="session")
def nvidia_repository(engine):
    """The stand-in for NVIDIA's apt repository, served where the targets reach it."""
    repository = Repository(bridge_gateway(engine))
    yield repository
    repository.close()


@pytest.fixture(scope="session")
def deployment(engine, nvidia_repository):
    """Two fresh GPU hosts (stand-in driver) with the hub deployed by the CI smoke path: deployed, then
    deployed again. The first deploy installs the toolkit from the stand-in repository."""
    deployment = smoke.start(2, prefix="hub", repository=nvidia_repository)
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


@pytest.fixture
def fresh_gpu_target(engine):
    (target,) = start_targets(engine, 1, prefix="freshgpu", gpus=True)
    yield target
    remove_targets(engine, [target])
