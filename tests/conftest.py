"""Fixtures of the test bed: a real Docker engine, throwaway SSH targets, and a hub deployed onto them."""

from __future__ import annotations

import pytest

from testbed import engine as testbed_engine
from testbed import smoke
from testbed.aptrepo import Repository
from testbed.browser import Browser
from testbed.targets import bridge_gateway, remove_all, remove_targets, start_targets


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
    with smoke.deployed(smoke.start(2, prefix="hub", repository=nvidia_repository,
                                    data={"sudo_groups": ["sudoers"], "http_port": 80, "hsts_max_age": 600})) as deployment:
        yield deployment


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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browsers(request):
    """Open real browsers (``browsers(ca_files, hosts)``); when the test fails, each one's last page is
    kept as a screenshot under .testbed/artifacts/, so that a failure can be seen, not only read."""
    opened = []

    def open_browser(ca_files=(), hosts=None) -> Browser:
        browser = Browser(ca_files, hosts)
        opened.append(browser)
        return browser

    yield open_browser
    failed = any(getattr(getattr(request.node, f"report_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    for index, browser in enumerate(opened):
        if failed:
            path = browser.screenshot(f"{request.node.name}-{index}")
            print(f"screenshot of the last page: {path}")
        browser.close()
