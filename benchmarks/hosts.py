"""Deploy and boot times on each kind of host the test bed has, printed in one run.

    .venv/bin/python -m benchmarks.hosts            (needs the test bed: run bin/test once first)

For each kind: Debian 12 booted by SysV init, as root; Debian 12 booted by systemd, as root; the same as a user
whose sudo asks for a password; Debian 13 booted by systemd (Docker 26), as a user with passwordless sudo. A fresh
GPU target (stand-in driver, the toolkit from the stand-in repository) is deployed cold, then again (no change),
then power-cycled (SIGKILL to the whole host, then a boot): the time until the hub answers through the proxy over
verified HTTPS, with no deploy. The kinds run one after another, so that each figure is its own; the images are
the test bed's (built once, then shipped to every target).
"""

from __future__ import annotations

import argparse
import time

from testbed import engine as testbed_engine
from testbed import smoke
from testbed.aptrepo import Repository
from testbed.targets import SYSTEMD_SUDO, SYSV, HostKind, bridge_gateway, remove_targets, wait_for_port

KINDS = [SYSV, HostKind("bookworm", "systemd"), HostKind("bookworm", "systemd", "opspw"), SYSTEMD_SUDO]


def measure(kind: HostKind, repository: Repository) -> dict[str, float]:
    deployment = smoke.start(1, prefix="benchhost", repository=repository, kinds=[kind],
                             data=smoke.DEBIAN_12_IMAGES)
    (target,) = deployment.targets
    try:
        cold, again = smoke.deploy_twice(deployment)
        container = deployment.engine.containers.get(target.container_id)
        deployment.hub(target).wait_until_answering()
        container.stop(timeout=0)
        container.start()
        started = time.monotonic()
        container.reload()
        target.address = container.attrs["NetworkSettings"]["IPAddress"]
        wait_for_port(target.address, 22, timeout=120)
        hub = deployment.hub(target, server_hostname=container.attrs["Config"]["Hostname"])
        hub.wait_until_answering(timeout=300)
        return {"cold": cold.seconds, "no change": again.seconds, "power cycle": time.monotonic() - started}
    finally:
        remove_targets(deployment.engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    engine = testbed_engine.client()
    repository = Repository(bridge_gateway(engine))
    try:
        print(f"{'host':<46} {'cold deploy':>12} {'no change':>10} {'power cycle to hub answering':>29}")
        for kind in KINDS:
            figures = measure(kind, repository)
            print(f"{str(kind):<46} {figures['cold']:>10.1f} s {figures['no change']:>8.1f} s "
                  f"{figures['power cycle']:>27.1f} s", flush=True)
    finally:
        repository.close()


if __name__ == "__main__":
    main()
