"""A real pyinfra run with bad inventory data stops before changing any host, naming the bad key."""

import pytest

from testbed.acme import throwaway_ca
from testbed.deploy import run_deploy
from testbed.images import SUDO_PASSWORD
from testbed.targets import HostKind, remove_targets, start_targets, write_inventory_file

pytestmark = pytest.mark.slow

BAD_VALUES = [
    ({"netwrok_name": "jupyternet"}, "netwrok_name: unknown setting; did you mean 'network_name'?"),
    ({"network_name": "no spaces allowed"}, "network_name = 'no spaces allowed'"),
    ({"https_port": 70000}, "https_port = 70000"),
    ({"hub_names": ["hub..example.com"]}, "hub_names.0"),
    ({"engine_source": "snap"}, "engine_source = 'snap'"),
    ({"install_dir": "opt/hub"}, "install_dir = 'opt/hub'"),
    ({"nvidia_repo_url": "nvidia.github.io/libnvidia-container"},
     "nvidia_repo_url = 'nvidia.github.io/libnvidia-container'"),
    ({"gpu_ids": ["0"]}, "gpu_ids = ['0']: the host has no GPU (no nvidia-smi)"),
    ({"tls_mode": "letsencrypt", "hub_names": ["hub.example.test"]}, "tls_mode 'letsencrypt' needs acme_email"),
    ({"authenticator": "dummy"}, "authenticator 'dummy' lets anyone who knows one password in"),
    # Nothing answers on port 9 of the controller's loopback: the provider's discovery fails first.
    ({"authenticator": "oauth", "allow_all": True, "oauth_client_id": "hub", "oauth_client_secret_env": "HOME",
      "hub_names": ["hub.example.test"], "oauth_issuer_url": "https://127.0.0.1:9"},
     "oauth_issuer_url = 'https://127.0.0.1:9': cannot read https://127.0.0.1:9/.well-known/openid-configuration"),
]


def _untouched(engine, target) -> list[str]:
    container = engine.containers.get(target.container_id)
    changes = []
    if container.exec_run(["test", "-e", "/opt/jupyterhub-gpu"]).exit_code == 0:
        changes.append("/opt/jupyterhub-gpu exists")
    if container.exec_run(["dpkg-query", "-W", "docker.io"]).exit_code == 0:
        changes.append("docker.io is installed")
    if container.exec_run(["sh", "-c", "ls /var/lib/apt/lists/*_Packages"]).exit_code == 0:
        changes.append("apt lists were updated")
    return changes


@pytest.mark.parametrize(("data", "expected"), BAD_VALUES, ids=[next(iter(d)) for d, _ in BAD_VALUES])
def test_bad_value_fails_before_any_change(engine, fresh_target, data, expected, tmp_path):
    fresh_target.data.update(data)
    targets_file = write_inventory_file([fresh_target], tmp_path / "targets.json")
    run = run_deploy(targets_file)
    assert run.returncode != 0
    assert expected in run.log
    assert "nothing was changed" in run.log
    # The message alone: what a person reads first is what is wrong, not a traceback.
    assert "Traceback" not in run.log
    assert _untouched(engine, fresh_target) == []


@pytest.fixture(scope="module")
def systemd_target(engine):
    """A fresh Debian 12 host booted by systemd, with accounts that have sudo rights, ask a password, or have none."""
    (target,) = start_targets(engine, 1, prefix="access", kinds=[HostKind("bookworm", "systemd")])
    yield target
    remove_targets(engine, [target])


ACCESS = [
    ({"ssh_user": "ops"},
     "the deploy logs in as 'ops' (uid 1000), who is not root, and the inventory does not set _sudo"),
    ({"ssh_user": "opspw", "_sudo": True}, "sudo asks 'opspw' for a password and the inventory gives none"),
    ({"ssh_user": "nosudo", "_sudo": True, "_sudo_password": SUDO_PASSWORD},
     "'nosudo' could not become root with sudo"),
]


@pytest.mark.parametrize(("access", "expected"), ACCESS, ids=["no _sudo", "no _sudo_password", "no sudo rights"])
def test_a_login_that_cannot_become_root_is_refused_before_any_change(engine, systemd_target, access, expected,
                                                                      tmp_path):
    target = systemd_target
    target.data = dict(access)
    run = run_deploy(write_inventory_file([target], tmp_path / "targets.json"))
    assert run.returncode != 0
    assert expected in run.log and "nothing was changed" in run.log, run.log[-3000:]
    assert "Traceback" not in run.log
    assert _untouched(engine, target) == []


def test_one_bad_host_stops_every_host(engine, tmp_path):
    """Validation runs for all hosts before any operation: a valid host is not changed either."""

    good, bad = start_targets(engine, 2, prefix="pair")
    try:
        bad.data["https_port"] = "https"
        run = run_deploy(write_inventory_file([good, bad], tmp_path / "targets.json"))
        assert run.returncode != 0
        assert "https_port = 'https'" in run.log
        assert _untouched(engine, good) == []
        assert _untouched(engine, bad) == []
    finally:
        remove_targets(engine, [good, bad])


def test_pool_id_the_host_does_not_have_fails_before_any_change(engine, fresh_gpu_target, tmp_path):
    fresh_gpu_target.data["gpu_ids"] = ["0", "7"]
    run = run_deploy(write_inventory_file([fresh_gpu_target], tmp_path / "targets.json"))
    assert run.returncode != 0
    assert "gpu_ids = ['0', '7']: the host has no GPU 7; it has 0 (GPU-0a0a0a0a" in run.log
    assert _untouched(engine, fresh_gpu_target) == []


@pytest.mark.parametrize("port, settings, expected", [
    (443, {}, "https_port = 443: port 443 of the host is already taken (sshd (pid "),
    (80, {"tls_mode": "letsencrypt", "hub_names": ["hub.example.test"], "acme_email": "a@example.test"},
     "acme_challenge = 'http-01': port 80 of the host is already taken (sshd (pid "),
], ids=["https_port", "http-01"])
def test_a_port_another_process_holds_fails_before_any_change(engine, fresh_target, tmp_path, port, settings,
                                                               expected):
    """Something else already answers on a port the hub needs: refused with who holds it, before any change (the
    hub's own proxy holding it on a redeploy is what every deploy test's second run checks)."""
    container = engine.containers.get(fresh_target.container_id)
    container.exec_run(["/usr/sbin/sshd", "-p", str(port)])
    fresh_target.data.update(settings)
    run = run_deploy(write_inventory_file([fresh_target], tmp_path / "targets.json"))
    assert run.returncode != 0
    assert expected in run.log, run.log[-3000:]
    assert _untouched(engine, fresh_target) == []


@pytest.mark.parametrize("problem", ["key of another certificate", "certificate for another name"])
def test_provided_certificate_that_does_not_fit_fails_before_any_change(engine, fresh_target, tmp_path, problem):
    _, cert, key = throwaway_ca(tmp_path / "one", "one", dns=["hub.example.test"])
    _, other_cert, other_key = throwaway_ca(tmp_path / "two", "two", dns=["other.example.test"])
    if problem == "key of another certificate":
        files, expected = (cert, other_key), "does not match the certificate"
    else:
        files, expected = (other_cert, other_key), "does not cover hub.example.test"
    fresh_target.data.update(tls_mode="provided", hub_names=["hub.example.test"],
                             tls_cert_file=str(files[0]), tls_key_file=str(files[1]))
    run = run_deploy(write_inventory_file([fresh_target], tmp_path / "targets.json"))
    assert run.returncode != 0
    assert expected in run.log
    assert _untouched(engine, fresh_target) == []


def test_a_service_uid_another_account_holds_fails_before_any_change(engine, fresh_target, tmp_path):
    # A package made a system user with the id the hub and the proxy would run as: its processes could read their
    # secrets through /proc.
    container = engine.containers.get(fresh_target.container_id)
    assert container.exec_run(["useradd", "--system", "--uid", "990", "--user-group", "colord"]).exit_code == 0
    run = run_deploy(write_inventory_file([fresh_target], tmp_path / "targets.json"))
    assert run.returncode != 0
    assert ("service_uid = 990: the host's account 'colord' and group 'colord' hold that id" in run.log
            and "nothing was changed" in run.log), run.log[-3000:]
    assert _untouched(engine, fresh_target) == []
