"""The hub's static configuration applied to the data the deploy writes: what JupyterHub is told, for each
authenticator, without a deploy. Loaded the way JupyterHub loads it (traitlets' config file loader)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import traitlets
from traitlets.config.loader import PyFileConfigLoader

from jupyterhub_gpu.facts import GPU, GPUInventory, HostProfile
from jupyterhub_gpu.settings import from_host_data
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import contract
from roles.images import Images
from roles.services import FILES, hub_settings

PROFILE = HostProfile(os_id="debian", os_version="12", os_codename="bookworm", hostname="gpubox", ipv4=("10.0.0.5",),
                      cpus=4, memory_mib=32768)
IMAGES = Images(hub="jupyterhub-gpu/hub:1", singleuser="jupyterhub-gpu/singleuser:2", proxy="jupyterhub-gpu/proxy:3")


@pytest.fixture
def load(tmp_path, monkeypatch):
    """Write hub.json for ``data`` and the secrets the hub reads, then load the configuration."""

    def load(data: dict, secrets: dict | None = None, images: Images = IMAGES, **target):
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        for name, value in {"proxy_token": "p" * 64, "ops_api_token": "o" * 64, "gpu_check_api_token": "g" * 64,
                              **(secrets or {})}.items():
            (secrets_dir / name).write_text(value + "\n")
        settings = from_host_data("host1", data)
        document = hub_settings(Target(settings=settings, profile=PROFILE, **target), images)
        (tmp_path / "hub.json").write_text(json.dumps(contract.dump(document)))
        monkeypatch.setenv("JUPYTERHUB_GPU_SETTINGS", str(tmp_path / "hub.json"))
        monkeypatch.setenv("JUPYTERHUB_GPU_SECRETS", str(secrets_dir))
        monkeypatch.setenv("JUPYTERHUB_GPU_DATA", str(tmp_path))
        return PyFileConfigLoader("jupyterhub_config.py", path=str(FILES)).load_config()

    return load


def test_native_is_the_default_with_the_deploys_admin_accounts_and_safe_password_rules(load):
    config = load({})
    authenticator = config.JupyterHub.authenticator_class
    assert authenticator.__name__ == "DeployedNativeAuthenticator"
    assert config.Authenticator.admin_users == {"admin"}
    # An admin's approval at /hub/authorize is native's allow rule.
    assert config.Authenticator.allow_all is True
    native = config.NativeAuthenticator
    assert (native.minimum_password_length, native.check_common_password, native.allowed_failed_logins,
            native.open_signup) == (12, True, 5, False)


def test_values_reach_the_hub_as_data_never_as_code(load):
    """A value that would break generated Python arrives literally."""
    config = load({"network_name": "jupyternet", "hub_log_level": "DEBUG", "sudo_groups": ["gpu-admins"]})
    assert config.GPUDockerSpawner.network_name == "jupyternet"
    assert config.JupyterHub.log_level == "DEBUG"
    assert config.GPUDockerSpawner.volumes == {"jupyterhub-gpu-user-{username}": "/home/jovyan"}


def test_sudo_is_granted_to_members_of_sudo_groups_only(load):
    config = load({"sudo_groups": ["teachers"]})
    grant = config.GPUDockerSpawner.environment["GRANT_SUDO"]
    assert grant(spawner_of("teachers", "students")) == "yes"
    assert grant(spawner_of("students")) == "no"
    assert grant(spawner_of()) == "no"
    # The built image starts as root for its entry point, which drops to jovyan.
    assert config.GPUDockerSpawner.extra_create_kwargs(SimpleNamespace(image=IMAGES.singleuser)) == {"user": "root"}


def test_images_made_elsewhere_run_as_their_own_user(load):
    pulled = "quay.io/jupyter/pytorch-notebook:2025-01-06"
    images = Images(hub=IMAGES.hub, singleuser=IMAGES.singleuser, proxy=IMAGES.proxy,
                    profiles={"Standard": IMAGES.singleuser, "PyTorch": pulled})
    config = load({"image_profiles": [{"name": "Standard"}, {"name": "PyTorch", "gpu": True, "image": pulled}]},
                  images=images, gpus=GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),)))
    spawner = config.GPUDockerSpawner
    assert spawner.own_user_images == [pulled]
    assert spawner.extra_create_kwargs(SimpleNamespace(image=pulled)) == {}
    assert spawner.extra_create_kwargs(SimpleNamespace(image=IMAGES.singleuser)) == {"user": "root"}


def test_the_proxy_runs_apart_and_no_stale_pid_file_stays_on_the_database_volume(load, tmp_path):
    (tmp_path / "jupyterhub-proxy.pid").write_text("9")  # left on the volume by an earlier deploy
    config = load({})
    assert config.ConfigurableHTTPProxy.should_start is False
    assert config.ConfigurableHTTPProxy.api_url == "http://jupyterhub-proxy:8001"
    # The proxy reaches the hub's services by the hub container's name, not its own loopback.
    assert [service["url"] for service in config.JupyterHub.services if "url" in service] == ["http://jupyterhub:10101"]
    assert config.JupyterHub.db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    assert not (tmp_path / "jupyterhub-proxy.pid").exists()


def spawner_of(*groups):
    from types import SimpleNamespace

    return SimpleNamespace(user=SimpleNamespace(groups=[SimpleNamespace(name=g) for g in groups]))


def test_hsts_when_asked_and_every_cookie_secure_on_hub_and_servers(load):
    config = load({"hsts_max_age": 600})
    assert config.JupyterHub.tornado_settings == {"headers": {"Strict-Transport-Security": "max-age=600"},
                                                  "cookie_options": {"secure": True}}
    argument, cache = config.GPUDockerSpawner.args
    # (And a browser's access to a server is asked of the hub again after 30 s: a revoked share ends within that.)
    assert cache == "--HubOAuth.cache_max_age=30"
    name, value = argument.split("=", 1)
    # The single-user server reads it as traitlets reads a Dict from its command line.
    assert name == "--ServerApp.tornado_settings"
    assert traitlets.Dict().from_string(value) == {"xsrf_cookie_kwargs": {"secure": True},
                                                   "headers": {"Strict-Transport-Security": "max-age=600"}}
    without = load({"hsts_max_age": 0})
    assert without.JupyterHub.tornado_settings["headers"] == {}
    assert without.JupyterHub.tornado_settings["cookie_options"] == {"secure": True}
    assert traitlets.Dict().from_string(without.GPUDockerSpawner.args[0].split("=", 1)[1]) == {
        "xsrf_cookie_kwargs": {"secure": True}}


def test_a_class_logging_in_at_once_waits_in_line_and_the_hub_outweighs_its_servers(load):
    config = load({})
    spawner = config.GPUDockerSpawner
    # Twice the host's CPUs start at once; timeouts sized for a busy host, not JupyterHub's 60 s and 30 s.
    assert (spawner.spawns_at_once, spawner.start_timeout, spawner.http_timeout) == (2 * PROFILE.cpus, 900, 300)
    assert config.JupyterHub.concurrent_spawn_limit == 200
    assert spawner.extra_host_config(spawner_of())["cpu_shares"] == 256
    custom = load({"spawns_at_once": 0, "spawn_start_timeout": 60, "spawn_http_timeout": 30,
                   "concurrent_spawn_limit": 0, "user_cpu_shares": 1024})
    assert (custom.GPUDockerSpawner.spawns_at_once, custom.GPUDockerSpawner.start_timeout,
            custom.GPUDockerSpawner.http_timeout, custom.JupyterHub.concurrent_spawn_limit) == (0, 60, 30, 0)
    assert custom.GPUDockerSpawner.extra_host_config(spawner_of())["cpu_shares"] == 1024


def test_idle_servers_are_culled_and_gpu_servers_sooner(load):
    gpus = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),))
    config = load({"gpu_idle_timeout": 600, "gpu_max_age": 7200, "cull_every": 30, "activity_interval": 60},
                  gpus=gpus)
    services = {service["name"]: service for service in config.JupyterHub.services}
    assert "--timeout=3600" in services["idle-culler"]["command"]
    assert "--timeout=600" in services["gpu-idle-culler"]["command"]
    assert all("--cull-every=30" in services[name]["command"] for name in ("idle-culler", "gpu-idle-culler"))
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert roles["idle-culler-role"]["scopes"] == ["list:users", "read:users:activity", "read:servers",
                                                   "delete:servers"]
    # Each server reports its activity as often as asked; the hub reads the proxy's at least every 30 s, which is
    # also when it puts back the routes a restarted proxy lost.
    assert config.GPUDockerSpawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] == "60"
    assert config.JupyterHub.last_activity_interval == 30
    assert load({"activity_interval": 10}).JupyterHub.last_activity_interval == 10
    # Without GPUs no GPU culler runs; with no limits, none at all.
    assert "gpu-idle-culler" not in {service["name"] for service in load({}).JupyterHub.services}
    off = load({"idle_timeout": 0, "gpu_idle_timeout": 0}, gpus=gpus)
    assert {service["name"] for service in off.JupyterHub.services} == {"gpus", "jupyterhub-gpu-check"}
    # The GPU service tells each server when the cullers will stop it, and warns at the deploy's minutes; by
    # default those the spawner package warns at on its own.
    from gpudockerspawner.server_view import WARNINGS, Stops
    from gpudockerspawner.service import ENV

    told = Stops.from_json(services["gpus"]["environment"][ENV["stops"]])
    assert (told.gpu_idle_timeout, told.gpu_max_age, told.cull_every, told.warnings) == (600, 7200, 30, WARNINGS)


def test_gpu_idleness_and_work_reach_both_cullers_and_the_gpu_service_samples_this_hosts_gpus(load):
    from gpudockerspawner import culling
    from gpudockerspawner.service import ENV
    from roles.services import FIGURES_FILE, USAGE_DB, compose_project

    gpus = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),))
    data = {"gpu_idle_timeout": 900, "gpu_idle_utilization": 10, "gpu_busy_is_activity": True,
            "gpu_sample_interval": 3}
    config = load(data, gpus=gpus)
    services = {service["name"]: service for service in config.JupyterHub.services}
    for name in ("idle-culler", "gpu-idle-culler"):
        environment = services[name]["environment"]
        assert (environment[culling.GPU_IDLE_ENV], environment[culling.BUSY_KEEPS_ENV],
                environment[culling.BUSY_AT_ENV],
                environment[culling.BUSY_WINDOW_ENV], environment[culling.FIGURES_ENV]) == ("1", "1", "10", "900",
                                                                                            FIGURES_FILE)
    # Both read servers' state: a busy GPU keeps a server from either.
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert "admin:server_state" in roles["idle-culler-role"]["scopes"]
    assert str(culling.CONFIG_FILE) in " ".join(services["idle-culler"]["command"])
    gpu_service = services["gpus"]["environment"]
    assert json.loads(gpu_service[ENV["samplers"]]) == ["http://jupyterhub-gpu-sampler:9400/"]
    assert (gpu_service[ENV["interval"]], gpu_service[ENV["busy_at"]], gpu_service[ENV["usage"]]) == ("3", "10",
                                                                                                      USAGE_DB)
    assert config.GPUDockerSpawner.usage_db == USAGE_DB
    # Everyone may open the GPU page (it shows them their own GPUs), and share their own server (server_sharing, on
    # by default): naming whom to, as JupyterHub's shares API asks.
    assert {"name": "user", "scopes": ["self", "access:services!service=gpus", "shares!user", "read:users:name",
                                       "read:groups:name"]} in config.JupyterHub.load_roles
    assert services["gpus"]["oauth_client_allowed_scopes"] == ["shares!user", "read:users:name", "read:groups:name"]
    assert set(config.JupyterHub.template_vars) == {"announcement_home", "announcement_spawn"}
    # The sampler: the driver's utilities only, as nobody, nothing of the host.
    settings = from_host_data("host1", data)
    target = Target(settings=settings, profile=PROFILE, gpus=gpus)
    sampler = compose_project(target, IMAGES, SimpleNamespace(directory="/x"), SimpleNamespace(paths={}))["services"][
        "gpu-sampler"]
    assert sampler["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu", "utility"]}]
    assert (sampler["user"], sampler["read_only"], sampler["cap_drop"], "volumes" in sampler) == (
        "65534:65534", True, ["ALL"], False)
    assert sampler["command"] == ["--port", "9400", "--interval", "3"]
    # No GPU: no sampler, and the GPU service has none to ask.
    cpu_only = Target(settings=from_host_data("host1", {}), profile=PROFILE)
    assert "gpu-sampler" not in compose_project(cpu_only, IMAGES, SimpleNamespace(directory="/x"),
                                                SimpleNamespace(paths={}))["services"]
    services = {s["name"]: s for s in load({}).JupyterHub.services}
    assert json.loads(services["gpus"]["environment"][ENV["samplers"]]) == []


def test_gpu_idleness_needs_a_limit_to_be_judged_over():
    from jupyterhub_gpu.settings import InventoryError

    with pytest.raises(InventoryError) as refused:
        from_host_data("host1", {"gpu_idle_timeout": 0, "gpu_idle_utilization": 5})
    assert "gpu_idle_utilization = 5: GPU idleness is judged over gpu_idle_timeout, which is 0" in str(refused.value)


def test_image_profiles_in_the_spawn_form_gpu_ones_only_for_gpu_users(load):
    from types import SimpleNamespace

    gpus = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),))
    config = load({"user_cpu_limit": 4, "user_mem_limit": "16G"}, gpus=gpus)
    spawner = config.GPUDockerSpawner
    gpu_user, other = SimpleNamespace(may_use_gpu=lambda: True), SimpleNamespace(may_use_gpu=lambda: False)
    assert list(spawner.allowed_images(gpu_user)) == ["GPU (CUDA)", "Standard"]
    assert list(spawner.allowed_images(other)) == ["Standard"]
    assert spawner.gpu_images == ["GPU (CUDA)"]
    # The old set-up's one core and 2 GB for the standard profile; the GPU profile gets the host-wide limits.
    assert spawner.limits_by_image == {"Standard": {"cpu_limit": 1.0, "mem_limit": "2G"},
                                       "GPU (CUDA)": {"cpu_limit": 4.0, "mem_limit": "16G"}}
    assert config.JupyterHub.shutdown_on_logout is False
    # Without GPUs there is one profile: no choice, no GPU image.
    cpu_only = load({"shutdown_on_logout": True})
    assert "allowed_images" not in cpu_only.GPUDockerSpawner and cpu_only.JupyterHub.shutdown_on_logout is True


def test_the_gpu_check_may_start_and_stop_its_own_users_servers_only(load):
    gpus = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),))
    config = load({}, gpus=gpus)
    services = {service["name"]: service for service in config.JupyterHub.services}
    assert services["jupyterhub-gpu-check"]["api_token"] == "g" * 64
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert roles["jupyterhub-gpu-check"]["scopes"] == ["servers!user=gpu-check", "read:users!user=gpu-check"]
    assert roles["gpu-check-user"]["users"] == ["gpu-check"]
    # Nobody logs in as the check's user, whatever the identity provider says; everyone else as before.
    hook = config.Authenticator.post_auth_hook
    authenticator = SimpleNamespace(log=logging.getLogger("test"))
    assert hook(authenticator, None, {"name": "gpu-check"}) is None
    assert hook(authenticator, None, {"name": "ada", "admin": None}) == {"name": "ada", "admin": None}
    assert "jupyterhub-gpu-check" not in {service["name"] for service in load({}).JupyterHub.services}


def test_a_scraper_token_reads_metrics_and_nothing_else(load):
    config = load({"metrics_token": True}, {"metrics_api_token": "m" * 64})
    services = {service["name"]: service for service in config.JupyterHub.services}
    assert services["jupyterhub-gpu-metrics"]["api_token"] == "m" * 64
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert roles["jupyterhub-gpu-metrics"]["scopes"] == ["read:metrics"]
    assert "jupyterhub-gpu-metrics" not in {service["name"] for service in load({}).JupyterHub.services}


def test_user_servers_come_back_with_the_engine_and_are_found_at_their_new_address(load):
    config = load({})
    host_config = config.GPUDockerSpawner.extra_host_config(spawner_of())
    assert (host_config["restart_policy"], host_config["auto_remove"]) == ({"Name": "always"}, False)
    assert config.GPUDockerSpawner.remove is True
    assert config.GPUDockerSpawner.use_internal_ip is True


def test_user_containers_are_limited_and_gain_no_privileges_unless_they_may_sudo(load):
    # A profile without limits of its own has the user_* limits.
    config = load({"sudo_groups": ["teachers"], "user_pids_limit": 512, "user_mem_limit": "6G", "user_cpu_limit": 1.5,
                   "image_profiles": [{"name": "Standard"}]})
    spawner = config.GPUDockerSpawner
    assert (spawner.mem_limit, spawner.cpu_limit, spawner.gpu_shm_size) == ("6G", 1.5, "4G")
    student = spawner.extra_host_config(spawner_of("students"))
    assert student["pids_limit"] == 512
    assert (student["cap_drop"], student["cap_add"], student["security_opt"]) == (
        ["ALL"], ["SETUID", "SETGID"], ["no-new-privileges"])
    teacher = spawner.extra_host_config(spawner_of("teachers"))
    assert "security_opt" not in teacher and teacher["cap_drop"] == ["ALL"]
    assert "NET_RAW" not in teacher["cap_add"] and "NET_BIND_SERVICE" not in teacher["cap_add"]
    for host_config in (student, teacher):  # nobody binds a port below 1024, the hub's API port among them
        assert host_config["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "1024"}
    assert {"SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE"} <= set(teacher["cap_add"])


def test_limits_default_to_the_standard_profile_and_else_to_half_the_host(load):
    spawner = load({}).GPUDockerSpawner
    assert (spawner.mem_limit, spawner.cpu_limit) == ("2G", 1.0)
    gpus = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-aaaa", "A100", 40960),))
    assert load({}, gpus=gpus).GPUDockerSpawner.limits_by_image["GPU (CUDA)"] == {"cpu_limit": 2.0,
                                                                                  "mem_limit": "16384M"}


def test_ldap_with_a_bind_template_tls_and_a_group_rule(load, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = load({"authenticator": "ldap", "ldap_server_address": "ldap.example.org", "ldap_ca_file": str(ca),
                   "ldap_bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
                   "allowed_groups": ["cn=hub,ou=groups,dc=example,dc=org"]})
    assert config.JupyterHub.authenticator_class == "ldapauthenticator.LDAPAuthenticator"
    ldap = config.LDAPAuthenticator
    assert ldap.server_address == "ldap.example.org"
    assert ldap.tls_strategy == "on_connect"
    assert ldap.tls_kwargs == {"ca_certs_file": str(tmp_path / "secrets" / "ldap_ca")}
    assert ldap.bind_dn_template == ["uid={username},ou=people,dc=example,dc=org"]
    assert ldap.allowed_groups == ["cn=hub,ou=groups,dc=example,dc=org"]
    assert config.Authenticator.allow_all is False
    assert instantiated(config).tls_strategy.name == "on_connect"


def test_ldap_lookup_reads_the_search_password_from_its_secret(load, tmp_path):
    password = tmp_path / "search-password"
    password.write_text("s3arch")
    config = load({"authenticator": "ldap", "ldap_server_address": "10.1.2.3", "allow_all": True,
                   "ldap_user_search_base": "ou=people,dc=example,dc=org",
                   "ldap_search_user": "cn=reader,dc=example,dc=org",
                   "ldap_search_password_file": str(password)},
                  secrets={"ldap_search_password": "s3arch"})
    ldap = config.LDAPAuthenticator
    assert (ldap.lookup_dn, ldap.user_search_base, ldap.lookup_dn_search_password) == (
        True, "ou=people,dc=example,dc=org", "s3arch")
    assert config.Authenticator.allow_all is True


OAUTH = {"authenticator": "oauth", "oauth_client_id": "hub", "oauth_client_secret_env": "HUB_SECRET",
         "hub_names": ["hub.example.org"], "allowed_users": ["ada"]}


@pytest.mark.parametrize(
    ("provider", "extra", "class_path", "checks"),
    [
        ("generic", {"allowed_groups": ["physics"], "oauth_issuer_url": "https://id.example.org"},
         "oauthenticator.generic.GenericOAuthenticator",
         {"authorize_url": "https://id.example.org/auth", "username_claim": "preferred_username",
          "allowed_groups": {"physics"}, "manage_groups": True, "auth_state_groups_key": "oauth_user.groups"}),
        ("github", {"allowed_groups": ["my-lab"]}, "oauthenticator.github.GitHubOAuthenticator",
         {"allowed_organizations": {"my-lab"}}),
        ("gitlab", {"oauth_gitlab_url": "https://gitlab.example.org", "allowed_groups": ["lab"]},
         "oauthenticator.gitlab.GitLabOAuthenticator",
         {"gitlab_url": "https://gitlab.example.org", "allowed_gitlab_groups": {"lab"}}),
        ("azuread", {"oauth_azuread_tenant_id": "contoso.onmicrosoft.com"},
         "oauthenticator.azuread.AzureAdOAuthenticator",
         {"tenant_id": "contoso.onmicrosoft.com", "username_claim": "oid"}),
    ],
)
def test_oauth_providers(load, monkeypatch, provider, extra, class_path, checks):
    monkeypatch.setenv("HUB_SECRET", "from-the-environment")
    endpoints = {"authorize_url": "https://id.example.org/auth", "token_url": "https://id.example.org/token",
                 "userdata_url": "https://id.example.org/userinfo"}
    config = load({**OAUTH, "oauth_provider": provider, **extra}, secrets={"oauth_client_secret": "s3cret"},
                  oauth_endpoints=endpoints if provider == "generic" else {})
    assert config.JupyterHub.authenticator_class == class_path
    section = config[class_path.rsplit(".", 1)[1]]
    assert section.client_secret == "s3cret"
    assert section.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    for name, value in checks.items():
        assert section[name] == value
    assert config.Authenticator.allowed_users == {"ada"}
    authenticator = instantiated(config)
    # The client id is set once for every provider (OAuthenticator.client_id, from the settings' trait table).
    assert (authenticator.client_id, authenticator.client_secret) == ("hub", "s3cret")


def instantiated(config):
    """The authenticator as JupyterHub makes it from this configuration: every trait validated."""
    from jupyterhub.app import JupyterHub

    return JupyterHub(config=config).authenticator_class(config=config)


@pytest.mark.parametrize("kind", ["shared-password", "dummy"])
def test_test_authenticators_say_so_in_the_hub_log(load, kind, caplog):
    config = load({"authenticator": kind, "insecure_test_mode": True},
                  secrets={"shared_password": "x" * 24, "shared_admin_password": "y" * 48})
    assert config.JupyterHub.authenticator_class == kind
    assert "INSECURE TEST MODE" in caplog.text
    instantiated(config)


def test_admin_accounts_come_from_their_password_files_once(load, tmp_path):
    """Created approved at hub start, never re-applied over an admin's own change, re-applied when rotated;
    nobody signs up under an admin's name."""
    from jupyterhub import orm

    config = load({}, secrets={"admin-password-admin": "first-generated-password"})
    authenticator_class = config.JupyterHub.authenticator_class
    db = orm.new_session_factory("sqlite://")()

    def start_hub():
        return authenticator_class(config=config, admin_users={"admin"}, _deprecated_db_session=db)

    hub = start_hub()
    account = hub.get_user("admin")
    assert account.is_authorized and account.is_valid_password("first-generated-password")
    assert hub.create_user("admin", "another-long-password") is None
    assert hub.create_user("bob", "bobs-long-password!") is not None

    assert hub.change_password("admin", "the-admins-own-choice")
    start_hub()
    assert hub.get_user("admin").is_valid_password("the-admins-own-choice")

    (tmp_path / "secrets" / "admin-password-admin").write_text("rotated-generated-password\n")
    start_hub()
    assert hub.get_user("admin").is_valid_password("rotated-generated-password")
    applied = json.loads((tmp_path / "admin-passwords-applied.json").read_text())
    assert set(applied) == {"admin"} and "rotated" not in json.dumps(applied)


def test_native_logins_check_passwords_off_the_hubs_event_loop(load, monkeypatch):
    """Right and wrong passwords, an unapproved account and a locked one answer as NativeAuthenticator's own
    checks do, and every bcrypt check of eight logins at once runs in a thread other than the event loop's (in
    the loop, each would hold every other request for a quarter second). Checked by where bcrypt runs, not by
    timing, which a loaded machine makes unreliable."""
    import asyncio
    import threading

    import bcrypt
    from jupyterhub import orm

    config = load({}, secrets={"admin-password-admin": "first-generated-password"})
    db = orm.new_session_factory("sqlite://")()
    hub = config.JupyterHub.authenticator_class(config=config, admin_users={"admin"}, _deprecated_db_session=db,
                                                allowed_failed_logins=2, seconds_before_next_try=600)
    hub.create_user("carol", "carols-long-password")
    hub.get_user("carol").is_authorized = True
    hub.create_user("dave", "daves-long-password!")  # signed up, never approved

    checked_in = []
    checkpw = bcrypt.checkpw

    def recorded_checkpw(password, hashed):
        checked_in.append(threading.current_thread())
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recorded_checkpw)

    async def logins():
        loop_thread = threading.current_thread()
        answers = await asyncio.gather(*(hub.authenticate(None,
                                                          {"username": "carol", "password": "carols-long-password"})
                                        for _ in range(8)))
        refused = [await hub.authenticate(None, {"username": name, "password": password}) for name, password in
                   (("carol", "wrong-password"), ("dave", "daves-long-password!"), ("nobody", "x" * 20))]
        return answers, refused, loop_thread

    answers, refused, loop_thread = asyncio.run(logins())
    assert answers == ["carol"] * 8 and refused == [None, None, None]
    assert len(checked_in) >= 9, "each login with a known name checks its password"
    assert loop_thread not in checked_in, "a password was checked in the event loop's thread"
    # Locked after allowed_failed_logins wrong tries: even the right password is refused meanwhile, from that address.
    asyncio.run(hub.authenticate(None, {"username": "carol", "password": "wrong-again"}))
    assert asyncio.run(hub.authenticate(None, {"username": "carol", "password": "carols-long-password"})) is None


def test_failed_logins_lock_a_name_for_their_address_only_and_reserved_names_cannot_sign_up(load):
    """Anyone can try an admin's name: they lock it for their own address, never for the admin's."""
    import asyncio

    from jupyterhub import orm

    config = load({}, secrets={"admin-password-admin": "first-generated-password"})
    db = orm.new_session_factory("sqlite://")()
    hub = config.JupyterHub.authenticator_class(config=config, admin_users={"admin"}, _deprecated_db_session=db,
                                                allowed_failed_logins=3,
                                                seconds_before_next_try=600)

    def login(address: str, password: str):
        return asyncio.run(hub.authenticate(request_from(address), {"username": "admin", "password": password}))

    for _ in range(5):
        assert login("192.0.2.66", "guessed-password") is None
    assert login("192.0.2.66", "first-generated-password") is None, "locked for the guesser's address"
    assert login("198.51.100.7", "first-generated-password") == "admin", "not for the admin's"
    assert hub.create_user("gpu-check", "a-long-enough-password") is None
    assert hub.create_user("admin", "a-long-enough-password") is None
    assert hub.get_user("gpu-check") is None


def test_with_an_origin_per_user_the_hubs_cookies_can_come_from_the_hubs_own_origin_only(load):
    """A page on <user>.<hub> may set cookies for the whole domain; the hub's cookies are __Host- ones there."""
    on = load({"hub_names": ["hub.example.org"], "user_subdomains": True}, user_domain="hub.example.org")
    assert on.JupyterHub.subdomain_host == "https://hub.example.org"
    assert on.JupyterHub.cookie_host_prefix_enabled is True
    off = load({"hub_names": ["hub.example.org"]})
    # One origin for all (JupyterHub's advice: __Host- cookies on / would be shared by every server there).
    assert "cookie_host_prefix_enabled" not in off.JupyterHub


def request_from(peer: str, **headers):
    """A login request as the hub's server hands it over: its TCP peer, and the headers it came with (which the
    server, with xheaders, has already turned into ``remote_ip``: what a client wrote)."""
    from types import SimpleNamespace

    from tornado.httputil import HTTPHeaders

    spoofed = headers.get("X_Real_Ip") or peer
    headers = HTTPHeaders({name.replace("_", "-"): value for name, value in headers.items()})
    return SimpleNamespace(request=SimpleNamespace(
        remote_ip=spoofed, headers=headers, connection=SimpleNamespace(context=SimpleNamespace(address=(peer, 40000)))))


def test_the_login_address_is_the_peers_or_what_the_trusted_proxy_appended_never_a_clients_header(load):
    import asyncio

    from jupyterhub import orm

    config = load({}, secrets={"admin-password-admin": "first-generated-password"})
    db = orm.new_session_factory("sqlite://")()
    hub = config.JupyterHub.authenticator_class(config=config, admin_users={"admin"}, _deprecated_db_session=db)
    assert hub.trusted_proxies == ["jupyterhub-proxy"] and hub.failed_logins_per_hour == 60
    hub.trusted_proxies = ["127.0.0.2"]  # the proxy, as the hub resolves its name

    def address(peer, **headers):
        return asyncio.run(hub.client_address(request_from(peer, **headers)))

    # Through the proxy: the address it appended, last; what the client put before it counts for nothing.
    assert address("127.0.0.2", X_Forwarded_For="203.0.113.9, 198.51.100.20", X_Real_Ip="203.0.113.9") == \
        "198.51.100.20"
    assert address("::ffff:127.0.0.2", X_Forwarded_For="::ffff:198.51.100.20") == "198.51.100.20"
    # Straight to the hub's port (a user container can): the peer, whatever the headers say.
    assert address("172.18.0.7", X_Forwarded_For="203.0.113.9", X_Real_Ip="203.0.113.10") == "172.18.0.7"


def test_a_name_nobody_has_costs_the_same_password_check_as_one_that_exists(load, monkeypatch):
    import asyncio

    import bcrypt
    from jupyterhub import orm

    config = load({}, secrets={"admin-password-admin": "first-generated-password"})
    db = orm.new_session_factory("sqlite://")()
    hub = config.JupyterHub.authenticator_class(config=config, admin_users={"admin"}, _deprecated_db_session=db)
    checked = []
    checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda password,
                        hashed: checked.append(hashed[:7]) or checkpw(password, hashed))
    for name in ("admin", "nobody-here"):
        assert asyncio.run(hub.authenticate(request_from("192.0.2.1"), {"username": name, "password": "guess"})) is None
    admin_hash = hub.get_user("admin").password
    assert checked == [admin_hash[:7]] * 2, "the same bcrypt cost for both"


def test_working_together_reaches_the_hub_and_sharing_off_gives_nobody_the_scope(load):
    course = {"course-101": {"mount": "/home/jovyan/shared/course-101", "read": ["students"], "write": ["staff"]}}
    config = load({"shared_folders": course})
    assert config.GPUDockerSpawner.shared_folders == course
    assert config.GPUDockerSpawner.shared_volume_prefix == "jupyterhub-gpu-shared-"
    # Each server's token: JupyterHub's server role, and the GPU view's service.
    assert config.GPUDockerSpawner.server_token_scopes == ["users:activity!user", "access:servers!server",
                                                           "access:services!service=gpus"]
    services = {service["name"]: service for service in config.JupyterHub.services}
    assert services["gpus"]["environment"]["GPUDOCKERSPAWNER_SHARING"] == "1"
    off = load({"server_sharing": False})
    roles = {role["name"]: role for role in off.JupyterHub.load_roles}
    assert not [scope for role in roles.values() for scope in role["scopes"] if scope.startswith("shares")]
    services = {service["name"]: service for service in off.JupyterHub.services}
    assert services["gpus"]["environment"]["GPUDOCKERSPAWNER_SHARING"] == ""
    assert "oauth_client_allowed_scopes" not in services["gpus"]
