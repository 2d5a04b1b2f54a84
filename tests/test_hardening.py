"""What the deploy hardens, checked on the deployed targets: user containers kept apart and limited, the proxy
apart from the hub, TLS offering only what it should, HTTP headers and cookies, and a CA that signs nothing else.

Connections go only to the test bed's own hosts; the metadata address is checked by its rule, never probed."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time

import pytest
import requests

from testbed.hub import HubClient
from testbed.probe import HUB_LOGIN, PROBE

pytestmark = pytest.mark.slow

INSTALL_DIR = "/opt/jupyterhub-gpu"


def _probe(deployment, target, container: str, host: str, port: int) -> str:
    return deployment.exec(target, "docker", "exec", container, "python3", "-c", PROBE, host, str(port))


@pytest.fixture(scope="module")
def two_servers(deployment):
    """Two users' servers on the second target, a GPU one and a CPU-only one, as the isolation tests look at them."""
    target = deployment.targets[1]
    hub = deployment.hub(target)
    for user, options in (("isoa", {}), ("isob", {"gpu": "cpu"})):
        hub.ensure_user(user)
        hub.start_server(user, options=options)
    yield target, hub
    for user in ("isoa", "isob"):
        hub.stop_server(user)


def test_a_user_container_reaches_the_hub_api_and_nothing_else_on_its_network(deployment, two_servers):
    target, hub = two_servers
    address_b = deployment.exec(target, "docker", "inspect", "--format",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "jupyter-isob")
    # The probe can see an open port: the hub's API, which every server needs, and the GPU service's port for servers
    # (their JupyterLab's GPU view).
    assert _probe(deployment, target, "jupyter-isoa", "jupyterhub", 81) == "open"
    assert _probe(deployment, target, "jupyter-isoa", "jupyterhub", 82) == "open"
    # Another user's server, by address and by name; the proxy's API; the GPU service's own port (the pages, for the
    # proxy); the host's sshd through the gateway.
    for host, port in ((address_b, 8888), ("jupyter-isob", 8888), ("jupyterhub-proxy", 8001), ("jupyterhub", 10101),
                       ("gateway", 22)):
        assert _probe(deployment, target, "jupyter-isoa", host, port) == "timeout", (host, port)
    # The proxy still reaches both servers: each user's own server works through it.
    for user in ("isoa", "isob"):
        hub.write_file(user, "mine.txt", user)
        assert hub.read_file(user, "mine.txt") == user


def test_a_user_container_holds_no_hub_state_and_runs_limited(deployment, two_servers):
    target, _ = two_servers
    mounts = deployment.exec(target, "docker", "inspect", "--format",
                             "{{range .Mounts}}{{.Source}} {{end}}", "jupyter-isoa")
    assert "hub-data" not in mounts and "docker.sock" not in mounts and INSTALL_DIR not in mounts, mounts
    assert deployment.exec(target, "docker", "exec", "jupyter-isoa", "sh", "-c",
                           "ls /srv/jupyterhub/jupyterhub.sqlite 2>&1 || true").endswith("No such file or directory")
    limits = deployment.exec(target, "docker", "inspect", "--format",
                             "{{.HostConfig.Memory}} {{.HostConfig.CpuQuota}} {{.HostConfig.PidsLimit}} "
                             "{{.HostConfig.ShmSize}} "
                             "{{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}} {{.HostConfig.SecurityOpt}}",
                             "jupyter-isoa")
    memory, cpu_quota, pids, shm, cap_drop, cap_add, security = limits.split(" ", 6)
    assert int(memory) > 0 and int(cpu_quota) > 0 and int(pids) == 4096
    assert int(shm) == 4 * 2**30, "a GPU container gets a /dev/shm that data loaders can use"
    assert cap_drop == "[ALL]" and "NET_RAW" not in cap_add and "no-new-privileges" in security
    # The kernel of the container says the same: no raw sockets, no new privileges.
    status = deployment.exec(target, "docker", "exec", "jupyter-isoa", "grep", "-E", "^(CapBnd|NoNewPrivs)",
                             "/proc/self/status")
    fields = dict(line.split(":\t") for line in status.splitlines())
    assert fields["NoNewPrivs"] == "1"
    assert not int(fields["CapBnd"], 16) & (1 << 13), "CAP_NET_RAW is in the bounding set"
    # Nobody can pose as the hub: a user cannot listen on its API port (which the firewall lets every container
    # reach), nor on any port below 1024.
    listen = "import socket; socket.socket().bind(('0.0.0.0', 81)); print('listening')"
    code, output = deployment.engine.containers.get(target.container_id).exec_run(
        ["docker", "exec", "-u", "1000", "jupyter-isoa", "python3", "-c", listen])
    assert code != 0 and b"PermissionError" in output, output
    assert deployment.exec(target, "docker", "exec", "jupyter-isoa", "cat",
                           "/proc/sys/net/ipv4/ip_unprivileged_port_start") == "1024"


def test_the_firewall_drops_the_metadata_address_and_is_in_force(deployment):
    for target in deployment.targets:
        rules = deployment.exec(target, "iptables", "-S", "JUPYTERHUB-GPU")
        assert "-d 169.254.169.254/32" in rules and rules.splitlines()[2].endswith("-j DROP"), rules
        assert "-j JUPYTERHUB-GPU" in deployment.exec(target, "iptables", "-S", "DOCKER-USER")
        deployment.exec(target, "/usr/local/sbin/jupyterhub-gpu-firewall", "--check")


def test_the_rules_hold_again_once_the_firewall_applies_where_bridged_traffic_had_bypassed_them(deployment,
                                                                                              two_servers):
    """Without bridge-nf-call-iptables (Docker 27.3 and later leave br_netfilter unloaded after a reboot), traffic
    between two containers on the bridge never meets iptables. Switched off in each target's own network namespace
    (Debian 12 with Docker 20.10, Debian 13 with Docker 26): one person's server reaches the other's, the firewall's
    check (which the deploy asks) says the rules are not in force, and once it applies they hold again."""
    setting = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    firewall = "/usr/local/sbin/jupyterhub-gpu-firewall"
    for target in deployment.targets:
        hub = deployment.hub(target)
        if target is not two_servers[0]:
            for user in ("isoa", "isob"):
                hub.ensure_user(user)
                hub.start_server(user, options={"gpu": "cpu"})
        address_b = deployment.exec(target, "docker", "inspect", "--format",
                                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "jupyter-isob")
        try:
            deployment.run(target, f"echo 0 > {setting}")
            assert _probe(deployment, target, "jupyter-isoa", address_b, 8888) == "open", target.kind
            assert deployment.run(target, f"{firewall} --check && echo applied || echo stale") == "stale"
            deployment.run(target, firewall)
            assert deployment.output(target, f"cat {setting}") == "1"
            assert _probe(deployment, target, "jupyter-isoa", address_b, 8888) == "timeout", target.kind
            deployment.exec(target, firewall, "--check")
        finally:
            deployment.run(target, f"echo 1 > {setting}")
            if target is not two_servers[0]:
                for user in ("isoa", "isob"):
                    hub.stop_server(user)


def _outcome(status: int, location: str, text: str) -> str:
    """How a login went, as the person reads it: in, told to wait, or told the password was wrong."""
    wait = re.search(r"try again in (\d+) s", text)
    if status == 302 and "/login" not in location:
        return "in"
    return f"wait {wait.group(1)}" if wait else "checked" if "Invalid username or password" in text else f"{status}"


def _login_through_the_proxy(hub: HubClient, name: str, password: str, **headers) -> str:
    browser = HubClient(hub.url, hub.ca_file, server_hostname=hub.server_hostname)
    # The same headers for the form as for its answer: the hub binds the form's _xsrf token to the address it sees.
    browser.get("/hub/login", headers=headers)
    answer = browser.request("POST", "/hub/login", headers=headers, allow_redirects=False, data={
        "username": name, "password": password, "_xsrf": browser.session.cookies.get("_xsrf")})
    return _outcome(answer.status_code, answer.headers.get("Location", ""), answer.text)


def _login_on_the_hubs_port(deployment, target, container: str, name: str, password: str, **headers) -> str:
    answer = json.loads(deployment.exec(target, "docker", "exec", container, "python3", "-c", HUB_LOGIN,
                                        "jupyterhub", "81", name, password, json.dumps(headers)))
    return _outcome(answer["status"], answer["location"], answer["text"])


def _rotating(n: int) -> dict:
    """Headers a client sends to pass for another address at each try."""
    return {"X-Real-Ip": f"203.0.113.{n}", "X-Forwarded-For": f"198.51.100.{n}"}


def test_guesses_get_no_more_tries_by_rotating_headers_and_the_owner_still_gets_in(deployment, two_servers):
    """Failed logins slow down the address they really come from: through the proxy (the address it saw) and straight
    on the hub's port (the peer's), whatever X-Real-Ip and X-Forwarded-For say. The guesses of a stranger never stop
    the owner from another address, nor from the same one once the announced wait is over."""
    target, hub = two_servers
    password = deployment.read(target, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
    free = 5  # native_allowed_failed_logins' default

    started = time.monotonic()
    proxied = [_login_through_the_proxy(hub, "admin", f"guess-{n}", **_rotating(n)) for n in range(12)]
    elapsed = time.monotonic() - started
    assert proxied[:free] == ["checked"] * free and proxied[free].startswith("wait"), proxied
    # One more check at most where the guesses took longer than the first wait (1 s) on a loaded machine.
    assert proxied.count("checked") <= free + (elapsed > 1), (proxied, elapsed)
    # The stranger guesses on as fast as the waits allow: each wait twice the last.
    checked = proxied.count("checked")
    for n in range(3):
        told = _login_through_the_proxy(hub, "admin", "guess-again", **_rotating(n))
        if told.startswith("wait"):
            assert int(told.split()[1]) <= 2 ** (checked - free), (told, checked)
            time.sleep(int(told.split()[1]))
            told = _login_through_the_proxy(hub, "admin", "guess-again", **_rotating(n))
        assert told == "checked", told
        checked += 1

    # The owner, from another address (a user container's, straight on the hub's port), gets in meanwhile, and the
    # stranger still waits.
    assert _login_on_the_hubs_port(deployment, target, "jupyter-isoa", "admin", password) == "in"
    assert _login_through_the_proxy(hub, "admin", "guess-more").startswith("wait")
    # The owner behind the stranger's address waits what the page says, no longer, and gets in.
    told = _login_through_the_proxy(hub, "admin", password)
    assert told.startswith("wait") and int(told.split()[1]) <= 2 ** (checked - free), (told, checked)
    time.sleep(int(told.split()[1]))
    assert _login_through_the_proxy(hub, "admin", password) == "in"

    # Straight on the hub's port, rotating headers, a container's guesses are its own address's.
    direct = [_login_on_the_hubs_port(deployment, target, "jupyter-isob", "admin", f"guess-{n}", **_rotating(n))
              for n in range(8)]
    assert direct[:free] == ["checked"] * free and direct[free].startswith("wait"), direct
    assert direct.count("checked") <= free + 1, direct


def test_the_proxy_runs_apart_unprivileged_with_only_its_certificate(deployment):
    target = deployment.targets[0]
    mounts = deployment.exec(target, "docker", "inspect", "--format",
                             "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "jupyterhub-proxy").split()
    assert sorted(m.split(":")[0].rsplit("/", 1)[1] for m in mounts) == ["proxy_token", "server.crt",
                                                                         "server.key"], mounts
    assert deployment.exec(target, "docker", "exec", "jupyterhub-proxy", "sh", "-c",
                           "test -e /var/run/docker.sock && echo present || echo absent") == "absent"
    # Its key and token live in memory: a tmpfs, private to its user, not the container's writable layer.
    assert deployment.exec(target, "docker", "exec", "jupyterhub-proxy", "stat", "-f", "-c", "%T",
                           "/run/proxy") == "tmpfs"
    assert deployment.exec(target, "docker", "exec", "jupyterhub-proxy", "stat", "-c", "%a %u",
                           "/run/proxy", "/run/proxy/server.key") == "700 990\n600 990"
    # (The proxy by its own name: Docker's health probe, a `node -e` that only opens a connection, runs now and then
    # beside it, as the container's starting user.)
    for container, process in (("jupyterhub-proxy", "configurable-http-proxy"), ("jupyterhub", "jupyterhub")):
        owners = deployment.exec(target, "docker", "top", container, "-eo", "pid,uid,args")
        lines = [line.split(None, 2) for line in owners.splitlines()[1:] if process in line]
        assert lines and all(uid != "0" for _, uid, _ in lines), owners
    # The CA's key is mounted into no container at all.
    for container in deployment.exec(target, "docker", "ps", "-q").split():
        sources = deployment.exec(target, "docker", "inspect", "--format", "{{range .Mounts}}{{.Source}} {{end}}",
                                  container)
        assert f"{INSTALL_DIR}/ca" not in sources, (container, sources)


def test_the_hub_and_the_proxy_run_as_an_id_the_host_reserves_for_them(deployment):
    """service_uid (990) belongs to a system account of the deploy's on the host, which nobody logs in as: no
    other host process runs with the id that can read the hub's and the proxy's secrets."""
    for target in deployment.targets:
        assert deployment.exec(target, "getent", "passwd", "990") == \
            "jupyterhub-gpu:x:990:990::/nonexistent:/usr/sbin/nologin"
        assert deployment.exec(target, "getent", "group", "990").startswith("jupyterhub-gpu:x:990:")
        for container in ("jupyterhub", "jupyterhub-proxy"):
            pid = deployment.exec(target, "docker", "inspect", "--format", "{{.State.Pid}}", container)
            ids = deployment.exec(target, "grep", "-E", "^(Uid|Gid):", f"/proc/{pid}/status").split()
            assert ids == ["Uid:", *["990"] * 4, "Gid:", *["990"] * 4], (container, ids)


def test_the_local_ca_signs_nothing_but_the_hubs_names(deployment):
    target = deployment.targets[0]
    ca = f"{INSTALL_DIR}/ca"
    constraints = deployment.exec(target, "openssl", "x509", "-in", f"{ca}/ca.crt", "-noout", "-ext",
                                  "nameConstraints")
    assert "Permitted" in constraints and target.address in constraints, constraints
    deployment.exec(target, "openssl", "verify", "-CAfile", f"{ca}/ca.crt", f"{INSTALL_DIR}/tls/server.crt")
    # Its key, used by someone who took it, signs a certificate for another site: no client accepts it.
    deployment.exec(target, "openssl", "req", "-x509", "-new", "-CA", f"{ca}/ca.crt", "-CAkey", f"{ca}/ca.key",
                    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "/tmp/other.key",
                    "-out", "/tmp/other.crt", "-days", "1", "-subj", "/CN=www.example.org",
                    "-addext", "subjectAltName=DNS:www.example.org")
    refused = deployment.exec(target, "openssl", "verify", "-CAfile", f"{ca}/ca.crt", "/tmp/other.crt", check=False)
    assert "permitted subtree violation" in refused, refused
    assert deployment.exec(target, "stat", "-c", "%a", f"{ca}/ca.key") == "600"


def _handshake(address: str, context: ssl.SSLContext) -> str:
    with socket.create_connection((address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            return f"{tls.version()} {tls.cipher()[0]}"


def _client(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    # A client that offers what it is told and checks nothing: the server alone decides.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def test_tls_offers_only_1_2_with_aead_and_1_3(deployment):
    address = deployment.targets[0].address
    assert _handshake(address, _client(ssl.TLSVersion.TLSv1_3)).startswith("TLSv1.3")
    assert _handshake(address, _client(ssl.TLSVersion.TLSv1_2, "ECDHE+AESGCM:@SECLEVEL=0")).startswith("TLSv1.2")
    refusals = {
        "TLS 1.0": _client(ssl.TLSVersion.TLSv1, "ALL:@SECLEVEL=0"),
        "TLS 1.1": _client(ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0"),
        "TLS 1.2 with CBC": _client(ssl.TLSVersion.TLSv1_2, "ECDHE+AES128+SHA:ECDHE+AES256+SHA:AES128-SHA:@SECLEVEL=0"),
    }
    for name, context in refusals.items():
        with pytest.raises(ssl.SSLError) as refused:
            _handshake(address, context)
        # The server's alert, not the client's own inability to offer the protocol.
        assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "SSLV3_ALERT_HANDSHAKE_FAILURE"), (
            name, refused.value)


def test_plain_http_redirects_to_https(deployment):
    address = deployment.targets[0].address
    response = requests.get(f"http://{address}/hub/login?next=%2Fhub%2F", allow_redirects=False, timeout=10)
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["Location"].startswith(f"https://{address}"), response.headers
    assert response.headers["Location"].endswith("/hub/login?next=%2Fhub%2F")


def test_hsts_on_hub_and_user_server_and_every_cookie_secure(deployment):
    """A person logs in with the form and opens their server: every response carries HSTS, every cookie that
    the hub and the server set is Secure."""
    target = deployment.targets[0]
    hub = deployment.hub(target)
    password = deployment.read(target, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
    hub.start_server("admin")
    try:
        person = requests.Session()
        base = hub.url
        verify = hub.ca_file
        responses = [person.get(f"{base}/hub/login", timeout=30, verify=verify)]
        login = person.post(f"{base}/hub/login", timeout=30, verify=verify,
                            data={"username": "admin", "password": password, "_xsrf": person.cookies["_xsrf"]})
        responses += [*login.history, login]
        lab = person.get(f"{base}/user/admin/lab", timeout=30, verify=verify)
        contents = person.get(f"{base}/user/admin/api/contents", timeout=30, verify=verify)
        responses += [*lab.history, lab, contents]
        assert lab.status_code == 200 and lab.url == f"{base}/user/admin/lab", lab.url
        assert contents.status_code == 200
        cookies = [cookie for response in responses for cookie in response.raw.headers.getlist("Set-Cookie")]
        # A cookie being cleared (empty, expired) carries nothing to protect; every other one is Secure.
        set_cookies = [cookie for cookie in cookies if cookie.split(";", 1)[0].split("=", 1)[1] not in ("", '""')]
        names = {cookie.split("=", 1)[0] for cookie in set_cookies}
        assert {"jupyterhub-session-id", "jupyterhub-hub-login", "jupyterhub-user-admin"} <= names, names
        assert [cookie for cookie in set_cookies if "; secure" not in cookie.lower()] == []
        # Every page and API answer carries HSTS. (Jupyter Server's bare redirect from /user/<name>/ to its
        # default URL is a plain tornado handler without configured headers: the policy is per host, and the
        # browser already holds it from the hub's answers before it.)
        pages = [response for response in responses if response.status_code == 200 or "/hub/" in response.url]
        assert len(pages) >= 4
        for response in pages:
            assert response.headers.get("Strict-Transport-Security") == "max-age=600", (response.url,
                                                                                        response.headers)
    finally:
        hub.stop_server("admin")
