"""Certificates from certbot against a local ACME server (Pebble), renewed by systemd's timer and service, and
provided ones, served by the hub."""

from __future__ import annotations

import socket
import ssl

import pytest

from testbed import STATE, smoke
from testbed.acme import Pebble, throwaway_ca
from testbed.targets import SYSV, HostKind, bridge_gateway, remove_targets, write_inventory_file

pytestmark = pytest.mark.slow

LE_NAME = "hub-acme.example.test"
PROVIDED_NAME = "hub-provided.example.test"


@pytest.fixture(scope="module")
def pebble(engine):
    server = Pebble(bridge_gateway(engine))
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls_deployment(engine, pebble):
    """Two fresh targets deployed at once: one booted by systemd with a certificate from Pebble over HTTP-01,
    one booted by SysV init with a provided certificate. Deployed twice; Pebble's order count is read between
    the runs."""
    deployment = smoke.start(2, prefix="tls", kinds=[HostKind("bookworm", "systemd"), SYSV])
    acme, provided = deployment.targets
    pebble.resolve(LE_NAME, acme.address)
    acme.data.update(tls_mode="letsencrypt", hub_names=[LE_NAME], acme_server=pebble.directory_url,
                     acme_email="admin@example.test", acme_ca_bundle=str(pebble.ca_file))
    ca, cert, key = throwaway_ca(STATE / "provided-tls", "provided", dns=[PROVIDED_NAME])
    provided.data.update(tls_mode="provided", hub_names=[PROVIDED_NAME], tls_cert_file=str(cert), tls_key_file=str(key))
    write_inventory_file(deployment.targets, deployment.targets_file)
    try:
        first = deployment.deploy()
        assert first.returncode == 0, first.log[-6000:]
        deployment.orders_after_first = pebble.orders()
        deployment.deploy()  # the second run; its results are read in the tests
        deployment.orders_after_second = pebble.orders()
        deployment.provided_ca = ca
        yield deployment
    finally:
        remove_targets(engine, deployment.targets)


def served_certificate(address: str, name: str, ca_pem: str | None = None, ca_file=None) -> dict:
    """Connect by address, ask for ``name``, verify the chain and the name; return the peer certificate."""
    context = ssl.create_default_context(cadata=ca_pem, cafile=str(ca_file) if ca_file else None)
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return tls.getpeercert()


def test_letsencrypt_mode_serves_a_certificate_that_chains_to_pebbles_root(tls_deployment, pebble):
    acme = tls_deployment.targets[0]
    certificate = served_certificate(acme.address, LE_NAME, ca_pem=pebble.issuing_root())
    assert ("DNS", LE_NAME) in certificate["subjectAltName"]
    assert tls_deployment.orders_after_first >= 1


def test_second_deploy_changes_nothing_and_orders_nothing(tls_deployment):
    second = tls_deployment.runs[1]
    assert second.returncode == 0
    assert second.totals["success"] == 0, second.changed_operations()
    assert tls_deployment.orders_after_second == tls_deployment.orders_after_first


def test_provided_mode_serves_the_provided_certificate(tls_deployment):
    provided = tls_deployment.targets[1]
    certificate = served_certificate(provided.address, PROVIDED_NAME, ca_file=tls_deployment.provided_ca)
    assert ("DNS", PROVIDED_NAME) in certificate["subjectAltName"]
    container = tls_deployment.engine.containers.get(provided.container_id)
    code, output = container.exec_run(["stat", "-c", "%a %U", "/opt/jupyterhub-gpu/tls/server.key"])
    assert (code, output.decode().strip()) == (0, "600 root"), "the key must be readable by root only"


def test_the_renewal_timer_is_enabled_and_scheduled_by_systemd(tls_deployment):
    container = tls_deployment.engine.containers.get(tls_deployment.targets[0].container_id)
    timers = container.exec_run(["systemctl", "list-timers", "--all", "--no-legend", "jupyterhub-gpu-renew.timer"])
    listed = timers.output.decode()
    assert "jupyterhub-gpu-renew.timer" in listed and "jupyterhub-gpu-renew.service" in listed
    enabled = container.exec_run(["systemctl", "is-enabled", "jupyterhub-gpu-renew.timer"])
    assert enabled.output.decode().strip() == "enabled"


def test_forced_renewal_serves_a_new_serial_and_keeps_user_servers(tls_deployment, pebble):
    acme = tls_deployment.targets[0]
    root = pebble.issuing_root()
    ca_file = STATE / "pebble-root.pem"
    ca_file.write_text(root)
    hub = tls_deployment.hub(acme, ca_file=ca_file, server_hostname=LE_NAME)
    hub.user_server_with_file("ann", "work.txt", "before renewal")
    container = tls_deployment.engine.containers.get(acme.container_id)
    started = container.exec_run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                                  "jupyter-ann"]).output
    before = served_certificate(acme.address, LE_NAME, ca_pem=root)["serialNumber"]

    # What the timer starts, started once: the unit's own command, forced, and without the random wait that
    # spreads scheduled renewals (a runtime drop-in, gone at the next boot, adds certbot's two flags).
    drop_in = "/run/systemd/system/jupyterhub-gpu-renew.service.d"
    code, output = container.exec_run(["sh", "-c", f"mkdir -p {drop_in} && printf '[Service]\\nExecStart=\\n"
                                       "ExecStart=/opt/jupyterhub-gpu/acme/renew --force-renewal "
                                       f"--no-random-sleep-on-renew\\n' > {drop_in}/force.conf && systemctl "
                                       "daemon-reload "
                                       "&& systemctl start jupyterhub-gpu-renew.service"])
    assert code == 0, output.decode(errors="replace")
    result = container.exec_run(["systemctl", "show", "--property=Result", "--value", "jupyterhub-gpu-renew.service"])
    assert result.output.decode().strip() == "success"
    hub.wait_until_answering()

    assert served_certificate(acme.address, LE_NAME, ca_pem=root)["serialNumber"] != before
    assert container.exec_run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                               "jupyter-ann"]).output == started
    assert hub.read_file("ann", "work.txt") == "before renewal"
