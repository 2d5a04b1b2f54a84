"""Thirty people start their servers at the same moment on a deployed 2-core host: every server becomes
ready, none is given up on, and the ones that wait are told so (the line is tested on its own in
spawner/tests/test_line.py and tests/test_spawner_docker.py)."""

from __future__ import annotations

import pytest

from testbed.storm import stop_all, storm

pytestmark = pytest.mark.slow

USERS = [f"class{i:02d}" for i in range(30)]


def test_thirty_servers_started_at_once_all_become_ready(deployment):
    target = deployment.targets[0]
    hub = deployment.hub(target)
    try:
        result = storm(hub, USERS, options={"gpu": "cpu"})
        print(f"storm of {len(USERS)}: {result.summary()}")
        assert result.failed == {}
        assert len(result.spawn_seconds) == len(USERS)
        code, log = deployment.engine.containers.get(target.container_id).exec_run(
            ["docker", "logs", "--since", "15m", "jupyterhub"])
        assert "Giving up" not in log.decode(errors="replace")
    finally:
        stop_all(hub, USERS)
