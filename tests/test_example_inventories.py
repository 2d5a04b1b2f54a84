"""The example inventories people copy: each holds groups of hosts as pyinfra's inventory files do (lists of
names or of (name, data) pairs), and every host's data passes the deploy's validation (pyinfra's own keys, such as
ssh_user and _sudo, are pyinfra's to check)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jupyterhub_gpu.settings import from_host_data

INVENTORIES = Path(__file__).resolve().parents[1] / "inventories"
# ci.py reads the test bed's targets from a file the tests write.
EXAMPLES = sorted(path for path in INVENTORIES.glob("*.py") if path.name != "ci.py")


# pyinfra's command line reads the file; in a process of its own, since importing pyinfra_cli monkey-patches the
# standard library for gevent.
READ_INVENTORY = """
import json, sys
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
with ctx_state.use(State()):
    inventory = make_inventory(sys.argv[1], cwd=sys.argv[2])
print(json.dumps({host.name: host.data.dict() for host in inventory}))
"""


def hosts_of(path: Path) -> dict[str, dict]:
    """Each host's data as pyinfra's own command line reads the inventory file (groups as lists of names or
    (name, data) pairs, or (hosts, data) tuples that give every host of the group that data)."""
    result = subprocess.run([sys.executable, "-c", READ_INVENTORY, str(path), str(path.parent)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_an_example_inventory_names_hosts_whose_data_is_valid(path, monkeypatch):
    hosts = hosts_of(path)
    assert hosts, f"{path.name} names no host"
    for host, data in hosts.items():
        # A secret the example reads from the controller's environment is there, as when its deploy runs.
        for key, value in data.items():
            if key.endswith("_env") and isinstance(value, str):
                monkeypatch.setenv(value, "a-secret-of-the-example")
        from_host_data(host, data)


def test_the_site_examples_are_what_their_pages_promise():
    """A class of 30 with LDAP on one 4-GPU server; a lab of three GPU nodes with OIDC and group rules."""
    ((_, course),) = hosts_of(INVENTORIES / "class-ldap.py").items()
    assert course["authenticator"] == "ldap" and set(course["gpu_groups"]) == {"students", "staff"}
    lab = hosts_of(INVENTORIES / "lab-oidc.py")
    assert len(lab) == 4 and {data["authenticator"] for data in lab.values()} == {"oauth"}
    assert all(data["gpu_groups"]["physics"]["gpus_per_user"] == 2 for data in lab.values())


def test_the_gpu_server_example_reaches_its_host_as_a_sudo_user():
    ((host, data),) = hosts_of(INVENTORIES / "gpu-server.py").items()
    assert data["ssh_user"] != "root" and data["_sudo"] is True
    assert data["hub_names"] == [host]


def test_the_cluster_example_gives_every_host_its_shared_data_and_the_hub_its_name():
    hosts = hosts_of(INVENTORIES / "cluster.py")
    assert set(hosts) == {"hub.example.org", "gpu1.example.org", "gpu2.example.org"}
    assert all(data["ssh_user"] == "ubuntu" and data["_sudo"] is True for data in hosts.values())
    assert hosts["hub.example.org"]["hub_names"] == ["hub.example.org"]


def test_the_remote_server_tutorial_shows_the_example_file_it_tells_readers_to_copy():
    from tests.test_docs import inventory_examples

    shown = [data for label, data in inventory_examples() if label.startswith("docs/tutorials/remote-server.md")]
    assert shown == list(hosts_of(INVENTORIES / "gpu-server.py").values())
