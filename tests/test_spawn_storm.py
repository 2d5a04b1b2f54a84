"""Fifty people log in on a deployed 2-core host at the same moment, each starts a server from the spawn
form and runs code in it: every one gets there, none is given up on, and the hub keeps answering
meanwhile (the p50 and p95 of a cheap API call are printed). The line that keeps such a crowd from
overrunning the host is tested on its own in spawner/tests/test_start_line.py and tests/test_spawner_docker.py."""

from __future__ import annotations

import secrets
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.people import Person
from testbed.smoke import INSTALL_DIR
from testbed.storm import Storm, hub_api_watched, stop_all

pytestmark = pytest.mark.slow

PEOPLE = [f"load{i:02d}" for i in range(50)]
READY_WITHIN = 900  # seconds: the deploy's own spawn start timeout


def test_fifty_people_log_in_start_a_server_and_run_code_at_once(deployment):
    target = deployment.targets[0]
    hub = deployment.hub(target)
    people = [Person(hub.url, hub.ca_file, name, secrets.token_urlsafe(12)) for name in PEOPLE]
    admin_password = deployment.read(target, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
    admin = Person(hub.url, hub.ca_file, "admin", admin_password)
    admin.log_in()

    def signed_up_and_approved(person: Person) -> None:
        person.sign_up()
        admin.approve(person.name)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(signed_up_and_approved, people))
    try:
        with hub_api_watched(hub, "admin") as api_seconds:
            with ThreadPoolExecutor(len(people)) as pool:
                visits = list(pool.map(
                    lambda person: person.visit("Standard", "sum(range(10**6))", "499999500000", READY_WITHIN),
                    people))
        failed = {visit.name: visit.failed for visit in visits if visit.failed}
        assert failed == {}
        whole = sorted(sum(visit.seconds.values()) for visit in visits)
        steps = {step: statistics.median(visit.seconds[step] for visit in visits)
                 for step in ("log in", "start", "ready", "run code")}
        print(f"{len(people)} people at once, every one ran their code; "
              f"login to result median {statistics.median(whole):.1f} s, p95 {Storm.quantile(whole, 0.95):.1f} s; "
              "median per step " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items())
              + f"; hub API p50 {Storm.quantile(api_seconds, 0.5) * 1000:.0f} ms, "
              f"p95 {Storm.quantile(api_seconds, 0.95) * 1000:.0f} ms, max {max(api_seconds) * 1000:.0f} ms "
              f"({len(api_seconds)} calls)")
        code, log = deployment.engine.containers.get(target.container_id).exec_run(
            ["docker", "logs", "--since", "15m", "jupyterhub"])
        assert "Giving up" not in log.decode(errors="replace")
    finally:
        stop_all(hub, PEOPLE)
