"""The example inventories people copy: each holds groups of hosts as pyinfra's inventory files do (lists of
names or of (name, data) pairs), and every host's data passes the deploy's validation (pyinfra's own keys, such as
ssh_user and _sudo, are pyinfra's to check)."""

import runpy
from pathlib import Path

import pytest

from jupyterhub_gpu.settings import from_host_data

INVENTORIES = Path(__file__).resolve().parents[1] / "inventories"
# ci.py reads the test bed's targets from a file the tests write.
EXAMPLES = sorted(path for path in INVENTORIES.glob("*.py") if path.name != "ci.py")


def hosts_of(path: Path) -> dict[str, dict]:
    """Each host's data, as pyinfra reads an inventory file: its module-level lists are groups."""
    hosts: dict[str, dict] = {}
    for name, group in runpy.run_path(str(path)).items():
        if name.startswith("_") or not isinstance(group, list):
            continue
        for entry in group:
            host, data = entry if isinstance(entry, tuple) else (entry, {})
            hosts.setdefault(host, {}).update(data)
    return hosts


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_an_example_inventory_names_hosts_whose_data_is_valid(path):
    hosts = hosts_of(path)
    assert hosts, f"{path.name} names no host"
    for host, data in hosts.items():
        from_host_data(host, data)


def test_the_gpu_server_example_reaches_its_host_as_a_sudo_user():
    ((host, data),) = hosts_of(INVENTORIES / "gpu-server.py").items()
    assert data["ssh_user"] != "root" and data["_sudo"] is True
    assert data["hub_names"] == [host]
