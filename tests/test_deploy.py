"""The real deploy onto two throwaway targets over SSH, checked through the hub's proxy over HTTPS."""

from __future__ import annotations

import socket
import ssl

import pytest

from roles.images import jupyterhub_pin
from roles.network import HUB_MAC, PROXY_MAC
from testbed.nvidia import FAKE_GPUS
from testbed.smoke import check_hub

pytestmark = pytest.mark.slow


def _hub_container_id(deployment, target) -> str:
    return deployment.exec(target, "docker", "inspect", "--format", "{{.Id}}", "jupyterhub")


def test_first_deploy_changed_both_hosts(deployment):
    first = deployment.runs[0]
    assert first.returncode == 0
    changed_hosts = {host for op in first.results["operations"] for host in op["success"]}
    assert changed_hosts == {target.address for target in deployment.targets}


def test_first_deploy_installed_the_toolkit_and_restarted_the_engine_once(deployment):
    changed = deployment.runs[0].changed_operations()
    hosts = ", ".join(sorted(target.address for target in deployment.targets))
    for operation in ("NVIDIA's repository key", "NVIDIA's apt repository", "NVIDIA Container Toolkit packages",
                      "Docker engine knows the nvidia runtime", "Restart the Docker engine for the nvidia runtime"):
        assert f"NVIDIA Container Toolkit | {operation} on {hosts}" in changed
    for target in deployment.targets:
        daemon = deployment.exec(target, "cat", "/etc/docker/daemon.json")
        assert '"nvidia"' in daemon
        packages = deployment.exec(target, "dpkg-query", "-W", "-f", "${Package}=${Version}\n",
                                   "nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                   "libnvidia-container-tools", "libnvidia-container1")
        assert len(packages.splitlines()) == 4
        keyring = deployment.exec(target, "cat", "/etc/apt/sources.list.d/nvidia-container-toolkit.list")
        assert keyring.startswith("deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] http")


def test_second_deploy_reports_no_change_on_either_host(deployment):
    second = deployment.runs[1]
    assert second.returncode == 0
    assert second.totals["success"] == 0, second.changed_operations()
    assert second.totals["error"] == 0
    per_host = {target.address: 0 for target in deployment.targets}
    for op in second.results["operations"]:
        for host in op["no_change"]:
            per_host[host] += 1
    assert all(count > 20 for count in per_host.values()), per_host
    # The local CA people imported stays theirs: the last lines point to it as before, and warn of no new one.
    assert second.log.count("browsers trust it once they import the local CA") == len(deployment.targets), second.log
    assert "the local CA was made anew" not in second.log


def test_each_hub_answers_over_verified_https(deployment):
    for target in deployment.targets:
        hub = deployment.hub(target)
        assert hub.version() == jupyterhub_pin().removeprefix("jupyterhub==")
        # The certificate chains to the host's local CA and names the host, by address and by name.
        context = ssl.create_default_context(cafile=str(deployment.ca_file(target)))
        for name in (target.address, deployment.exec(target, "hostname")):
            with socket.create_connection((target.address, 443), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=name) as tls:
                    assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # The hub's login form is served through configurable-http-proxy.
        login = hub.get("/hub/login")
        assert login.status_code == 200 and 'id="login_submit"' in login.text


@pytest.mark.parametrize("index", [0, 1], ids=["as root", "as a sudo user"])
def test_secrets_are_private_to_root_on_the_host(deployment, index):
    target = deployment.targets[index]
    modes = deployment.exec(target, "sh", "-c", "stat -c '%a %U %n' /opt/jupyterhub-gpu/secrets/*")
    names = {line.split()[2].rsplit("/", 1)[1]: line.split()[:2] for line in modes.splitlines()}
    # No ops token unless ops_token asks for one (the tests make short-lived tokens of their own); on a GPU host,
    # bin/gpu-check's token, which may start and stop the servers of the user gpu-check only.
    assert set(names) == {"cookie_secret", "proxy_token", "admin-password-admin", "gpu_check_api_token"}
    assert all(mode_owner == ["600", "root"] for mode_owner in names.values()), names
    for name in names:
        secret = deployment.exec(target, "cat", f"/opt/jupyterhub-gpu/secrets/{name}")
        assert len(secret) >= 24
        for run in deployment.runs:
            assert secret not in run.log


def test_the_firewall_knows_the_hub_and_the_proxy_by_their_mac_on_either_engine(deployment):
    """Docker 25 and newer take a MAC address per network endpoint and ignore the container-wide one: on Docker
    26 as on 20.10 the hub and the proxy carry the addresses the firewall trusts."""
    engines = set()
    for target in deployment.targets:
        engines.add(deployment.exec(target, "docker", "version", "--format", "{{.Server.Version}}").split(".")[0])
        for name, mac in (("jupyterhub", HUB_MAC), ("jupyterhub-proxy", PROXY_MAC)):
            assert deployment.exec(target, "docker", "inspect", "--format",
                                   "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}", name) == mac
        deployment.exec(target, "/usr/local/sbin/jupyterhub-gpu-firewall", "--check")
    assert engines == {"20", "26"}


def test_user_server_keeps_a_file_written_through_the_proxy(deployment):
    for target in deployment.targets:
        check_hub(deployment, target, user="alice")


def test_two_users_hold_different_gpus(deployment):
    target = deployment.targets[0]
    hub = deployment.hub(target)
    for user in ("dora", "eve"):
        hub.ensure_user(user)
        hub.start_server(user)
    held = {}
    for user in ("dora", "eve"):
        requests = deployment.exec(target, "docker", "inspect", "--format",
                                   "{{range .HostConfig.DeviceRequests}}{{join .DeviceIDs \",\"}}{{end}}",
                                   f"jupyter-{user}")
        visible = deployment.exec(target, "docker", "exec", f"jupyter-{user}", "printenv", "NVIDIA_VISIBLE_DEVICES")
        assert requests == visible
        held[user] = requests
    # The pool was discovered from the host's nvidia-smi: its GPUs by UUID.
    assert sorted(held.values()) == sorted(uuid for _, uuid, _, _ in FAKE_GPUS)
    # Admins read the same without Docker access, through the proxy.
    response = hub.get("/services/gpus/api/assignments")
    response.raise_for_status()
    assert response.json()["gpus"] == {gpu: [f"{user}/"] for user, gpu in held.items()}
    for user in ("dora", "eve"):
        hub.stop_server(user)


def test_hub_restart_cuts_no_open_session(deployment):
    """The proxy is apart from the hub: while the hub restarts, a user's open kernel websocket and file reads
    keep working through the proxy, and the server is the same container afterwards."""
    target = deployment.targets[0]
    hub = deployment.hub(target)
    hub.user_server_with_file("bob", "before-restart.txt", "still here")
    user_container = deployment.exec(target, "docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                                     "jupyter-bob")
    kernel = hub.kernel("bob")
    try:
        assert kernel.evaluate("x = 41; x") == "41"
        deployment.exec(target, "docker", "stop", "-t", "2", "jupyterhub")
        # The hub is down: the session goes on.
        assert kernel.evaluate("x + 1") == "42"
        assert hub.read_file("bob", "before-restart.txt") == "still here"
        deployment.exec(target, "docker", "start", "jupyterhub")
        hub.wait_until_answering()
        assert kernel.evaluate("x + 2") == "43"
    finally:
        kernel.close()
    assert deployment.exec(target, "docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                           "jupyter-bob") == user_container
    assert hub.user("bob")["servers"][""]["ready"]
    assert hub.read_file("bob", "before-restart.txt") == "still here"


def test_redeploy_with_changed_setting_keeps_users_and_files(deployment):
    target = deployment.targets[1]
    hub = deployment.hub(target)
    hub.user_server_with_file("carol", "notes.txt", "carol's work")
    hub.stop_server("carol")
    hub_before = _hub_container_id(deployment, target)

    changed = deployment.redeploy_with(hub_log_level="DEBUG")
    assert changed.returncode == 0, changed.log[-4000:]
    assert any("Hub settings" in name for name in changed.changed_operations())
    assert _hub_container_id(deployment, target) != hub_before, "the hub container should be recreated"

    assert hub.user("carol") is not None
    hub.start_server("carol")
    assert hub.read_file("carol", "notes.txt") == "carol's work"
    hub.stop_server("carol")

    engine_pid = deployment.exec(target, "cat", "/var/run/docker.pid")
    again = deployment.deploy()
    assert again.totals["success"] == 0, again.changed_operations()
    assert deployment.exec(target, "cat",
                           "/var/run/docker.pid") == engine_pid, "a no-change run restarted the engine"
