"""Fixtures of the test bed: a real Docker engine, throwaway SSH targets, and a hub deployed onto them."""

from __future__ import annotations

import pytest

from testbed import engine as testbed_engine
from testbed import smoke
from testbed.aptrepo import Repository
from testbed.browser import Browser
from testbed.images import ensure_singleuser_image
from testbed.localhub import LocalHub
from testbed.targets import SYSTEMD_SUDO, SYSV, bridge_gateway, remove_all, remove_targets, start_targets


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
    """Two fresh GPU hosts (stand-in driver) of the kinds people have, with the hub deployed by the CI smoke path:
    deployed, then deployed again. Target 0 is Debian 12 booted by SysV init (Docker 20.10), reached as root;
    target 1 is Debian 13 booted by systemd (Docker 26), reached as a user with sudo. The first deploy installs
    the toolkit from the stand-in repository. Both build their images from Debian 12 (base_image), so that they
    share the test bed's image builds."""
    with smoke.deployed(smoke.start(2, prefix="hub", repository=nvidia_repository, kinds=[SYSV, SYSTEMD_SUDO],
                                    data={"sudo_groups": ["sudoers"], "http_port": 80, "hsts_max_age": 600,
                                          **smoke.DEBIAN_12_IMAGES})) as deployment:
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


# The modules whose tests share the main deployment (the session fixture ``deployment``): one worker runs
# them all, in name order, so that the deployment is made once. Collection checks that the list is complete.
MAIN_DEPLOYMENT_MODULES = {"test_crash_recovery.py", "test_deploy.py", "test_hardening.py", "test_people.py",
                           "test_spawn_storm.py", "test_systemd_host.py"}


# What each scenario took (seconds of test time, bin/test on two cores): the longest start first, so that the run
# does not end with one worker on a long scenario while the other has nothing left (longest first is within a third
# of the best order). Only the order depends on these; a scenario missing here starts after them.
SCENARIO_SECONDS = {"main deployment": 670, "test_operations.py": 490, "test_swarm.py": 450, "test_faults.py": 310,
                    "test_tutorial.py": 290, "test_identity_providers.py": 270, "test_tls_modes.py": 195,
                    "test_fair_gpu_access.py": 180, "test_wsl.py": 125, "test_spawner_docker.py": 125,
                    "test_bad_input_deploy.py": 45}


def scenario_of(nodeid: str) -> str:
    """The unit one worker runs whole: a module, or the modules of the main deployment together."""
    path = nodeid.split("::", 1)[0]
    return "main deployment" if path.rsplit("/", 1)[-1] in MAIN_DEPLOYMENT_MODULES else path


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "deployment" in item.fixturenames and item.path.name not in MAIN_DEPLOYMENT_MODULES:
            raise pytest.UsageError(f"{item.nodeid} uses the main deployment: add {item.path.name} to "
                                    "MAIN_DEPLOYMENT_MODULES in tests/conftest.py")
    # A stable sort: each scenario's tests keep their order, and stay together.
    items.sort(key=lambda item: -SCENARIO_SECONDS.get(scenario_of(item.nodeid).rsplit("/", 1)[-1], 0))


def pytest_xdist_make_scheduler(config, log):
    """Scenarios side by side (pytest.ini runs two pytest-xdist workers): each module's tests stay together on
    one worker, and so do the modules of the main deployment; they start in the order of the collection, longest
    first (pytest.ini turns off xdist's own order, by number of tests). (xdist's ``loadgroup`` cannot group by mark
    under pytest 9, whose node ids it can no longer rewrite.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ScenarioScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scenario_of(nodeid)

    return ScenarioScheduling(config, log)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def local_hubs(engine, tmp_path):
    """Start real hubs on this machine (``local_hubs(extra_config, **spawner)``, testbed/localhub.py) with the spawner
    tests' small image (``local_hubs.image``); each is stopped and its containers removed after the test."""
    image = ensure_singleuser_image(engine)
    hubs = []

    def make(extra_config: str = "", **spawner) -> LocalHub:
        hub = LocalHub(tmp_path / f"hub{len(hubs)}", engine, image, spawner, extra_config)
        hubs.append(hub)
        hub.start()
        return hub

    make.image = image
    yield make
    for hub in hubs:
        hub.cleanup()


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


def pytest_terminal_summary(terminalreporter):
    """Each test file's time (setup, call and teardown summed), slowest first, so that the next slow one shows."""
    seconds: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) and getattr(report, "nodeid", ""):
                path = report.nodeid.split("::", 1)[0]
                seconds[path] = seconds.get(path, 0.0) + getattr(report, "duration", 0.0)  # none for collection
    if seconds:
        terminalreporter.section("seconds by test file")
        for path, total in sorted(seconds.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{total:8.1f} s  {path}")
