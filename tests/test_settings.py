"""Inventory data is validated in one place, and each error names the key, the value and what is allowed."""

from pathlib import Path

import pytest

from jupyterhub_gpu.settings import HubSettings, InventoryError, from_host_data

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"netwrok_name": "x"}, "netwrok_name: unknown setting; did you mean 'network_name'?"),
        ({"network_name": "bad name!"}, "network_name = 'bad name!': 'bad name!' is not allowed"),
        ({"https_port": 70000}, "https_port = 70000: Input should be less than or equal to 65535"),
        ({"https_port": 0}, "https_port = 0: Input should be greater than or equal to 1"),
        ({"hub_names": ["hub.example.com", "bad_name"]}, "hub_names.1 = ['hub.example.com', 'bad_name']"),
        ({"hub_addresses": ["10.0.0.300"]}, "'10.0.0.300' is not an IPv4 or IPv6 address"),
        ({"install_dir": "relative/dir"},
         "install_dir = 'relative/dir': 'relative/dir' is not allowed: an absolute path"),
        ({"engine_source": "snap"}, "engine_source = 'snap': Input should be 'distro' or 'docker-ce'"),
        ({"singleuser_image": "Not An Image"}, "singleuser_image = 'Not An Image'"),
        ({"singleuser_packages": ["jupyterlab"]}, "a pip requirement with a version"),
        ({"admin_users": ["Root User"]}, "admin_users.0"),
        ({"hub_packages": ["dockerspawner==14.0.0"]}, "hub_packages must pin jupyterhub exactly once"),
        ({"hub_packages": ["jupyterhub>=5"]}, "hub_packages = ['jupyterhub>=5']"),
        ({"keep_previous_images": -1}, "keep_previous_images = -1: Input should be greater than or equal to 0"),
        ({"gpu_idle_timeout": -5}, "gpu_idle_timeout = -5"),
        ({"gpu_idle_utilization": 150}, "gpu_idle_utilization = 150: Input should be less than or equal to 100"),
        ({"gpu_sample_interval": 0}, "gpu_sample_interval = 0: Input should be greater than or equal to 1"),
        ({"gpu_busy_is_activity": True, "gpu_idle_timeout": 0},
         "gpu_busy_is_activity = True: GPU idleness is judged over gpu_idle_timeout, which is 0"),
        ({"build_extra_ca_certs": ["/nonexistent.pem"]}, "'/nonexistent.pem' is not a file on the controller"),
        ({"user_mem_limit": "lots"}, "user_mem_limit = 'lots'"),
        ({"network_name": "host"}, "network_name = 'host': 'host' is Docker's own network"),
        ({"network_name": "bridge"}, "network_name = 'bridge': 'bridge' is Docker's own network"),
        ({"install_dir": "/etc/jupyterhub"}, "install_dir = '/etc/jupyterhub': '/etc/jupyterhub' is under /etc"),
        ({"install_dir": "/root/hub"}, "is under /root"),
        ({"install_dir": "/var/lib/docker/hub"}, "is under /var/lib/docker"),
        ({"singleuser_image": "--privileged"}, "singleuser_image = '--privileged'"),
        ({"nvidia_key_url": "http://nvidia.github.io/libnvidia-container/gpgkey"},
         "nvidia_key_url = 'http://nvidia.github.io/libnvidia-container/gpgkey': plain http:// lets anyone on the "
         "way change what it answers; use https://, or set allow_plain_http: true"),
        ({"acme_server": "http://acme.example.org/dir"}, "acme_server = 'http://acme.example.org/dir': plain http://"),
        ({"budget_period": "fortnight"}, "budget_period = 'fortnight': allowed: day, week (from Monday), month"),
        ({"budget_timezone": "Mars/Olympus"}, "budget_timezone = 'Mars/Olympus': not a time zone this host knows"),
        ({"gpu_hours": 0}, "gpu_hours = 0: Input should be greater than 0"),
        ({"gpu_groups": {"students": {"budget_period": "week"}}},
         "gpu_groups['students']: budget_period = 'week' but no budget; allowed: budget_period beside gpu_hours"),
        ({"gpu_groups": {"course": {"gpu_hours": 5, "budget_period": {"start": "2027-02-01", "end": "2026-09-01"}}}},
         "the term ends (2026-09-02 00:00) before it starts (2027-02-01 00:00)"),
    ],
)
def test_bad_value_is_refused_with_its_key(data, expected):
    with pytest.raises(InventoryError) as error:
        from_host_data("host1", data)
    assert expected in str(error.value)
    assert "host1" in str(error.value)
    assert "nothing was changed" in str(error.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tls_mode": "letsencrypt", "hub_names": ["hub.example.com"]}, "tls_mode 'letsencrypt' needs acme_email"),
        ({"tls_mode": "letsencrypt", "acme_email": "a@example.com"}, "needs hub_names"),
        ({"tls_mode": "letsencrypt", "acme_email": "a@example.com", "hub_names": ["h.example.com"],
          "acme_challenge": "dns-01"}, "needs acme_dns_plugin, acme_dns_credentials"),
        ({"tls_mode": "letsencrypt", "acme_email": "a@example.com", "hub_names": ["h.example.com"], "https_port": 80},
         "certbot's HTTP-01 answers need port 80, which https_port or http_port takes"),
        ({"tls_mode": "provided"}, "tls_mode 'provided' needs tls_cert_file, tls_key_file"),
        ({"acme_email": "not-an-address"}, "acme_email = 'not-an-address'"),
        ({"gpu_ids": "0,0"}, "gpu_ids = '0,0': GPU ids listed more than once"),
        ({"authenticator": "dummy"}, "authenticator 'dummy' lets anyone"),
        ({"authenticator": "shared-password"}, "needs insecure_test_mode: true"),
        ({"authenticator": "ldap", "ldap_server_address": "ldap.example.org"}, "needs an allow rule"),
        ({"authenticator": "ldap", "allow_all": True, "ldap_server_address": "ldap.example.org"},
         "needs ldap_bind_dn_template, or ldap_user_search_base"),
        ({"ldap_bind_dn_template": ["ou=people,dc=example,dc=org"]}, "an LDAP DN with {username} once"),
        ({"authenticator": "oauth", "allowed_users": ["ada"], "oauth_client_id": "hub",
          "oauth_client_secret_env": "JUPYTERHUB_GPU_NO_SUCH_VARIABLE", "oauth_issuer_url": "https://id.example.org",
          "hub_names": ["hub.example.org"]},
         "oauth_client_secret_env = 'JUPYTERHUB_GPU_NO_SUCH_VARIABLE': that variable is not set on the controller"),
        ({"authenticator": "oauth", "allow_all": True, "oauth_provider": "azuread"},
         "needs oauth_client_id; exactly one of oauth_client_secret_file, oauth_client_secret_env; "
         "oauth_azuread_tenant_id; hub_names or oauth_callback_url"),
        ({"sudo_groups": ["no spaces"]}, "sudo_groups.0 = ['no spaces']"),
        ({"gpu_groups": {"students": {"gpus_per_user": 2, "max_gpus": 1}}},
         "gpu_groups['students']: max_gpus 1 is less than the 2 GPUs each member's server gets, so no member could "
         "ever start one; allowed: max_gpus of at least 2, or no max_gpus"),
        ({"gpu_groups": {"students": {"max": 2}}}, "gpu_groups = {'students': {'max': 2}}: gpu_groups['students']: "
                                                   "unknown key 'max'; allowed: gpus_per_user, max_gpus"),
        ({"gpu_groups": "students"}, "gpu_groups = 'students': allowed: a list of hub group names, or rules by group"),
        ({"gpu_groups": ["no spaces"]}, "'no spaces' is not allowed: a JupyterHub group name"),
        ({"gpu_on_exhausted": "queue"}, "gpu_on_exhausted = 'queue': Input should be 'refuse', 'cpu' or 'wait'"),
        ({"image_profiles": [{"name": "GPU", "gpus": True}]},
         "image_profiles.0.gpus: unknown key; did you mean 'gpu'?"),
        # Native sign-ups under a listed name would skip the admin's approval: first come, first in.
        ({"allowed_users": ["ada"]}, "allowed_users = ['ada']: with authenticator 'native' these names skip an "
                                     "admin's approval"),
        ({"admin_users": ["admin", "gpu-check"]}, "admin_users.1 = ['admin', 'gpu-check']: 'gpu-check' is reserved"),
        ({"authenticator": "ldap", "allowed_users": ["gpu-check"], "ldap_server_address": "ldap.example.org"},
         "allowed_users.0 = ['gpu-check']: 'gpu-check' is reserved for bin/gpu-check's throwaway servers"),
    ],
)
def test_settings_that_only_fit_together_are_checked_together(data, expected):
    with pytest.raises(InventoryError) as error:
        from_host_data("host1", data)
    assert expected in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(InventoryError) as error:
        from_host_data("host1", {"https_port": -1, "network_name": "", "open_signup": "perhaps"})
    message = str(error.value)
    assert "https_port" in message and "network_name" in message and "open_signup" in message


def test_pyinfra_connector_keys_are_not_settings():
    settings = from_host_data("host1", {"ssh_user": "root", "_sudo": True, "docker_image": "x", "https_port": 8443})
    assert settings.https_port == 8443


def test_defaults_suit_a_single_host():
    settings = HubSettings()
    assert (settings.network_name, settings.https_port, settings.engine_source) == ("jupyternet", 443, "distro")


def test_extra_ca_certs_must_hold_a_certificate(tmp_path):
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello")
    with pytest.raises(InventoryError, match="holds no PEM certificate"):
        from_host_data("host1", {"build_extra_ca_certs": [str(not_pem)]})


def test_plain_http_where_trust_is_decided_is_allowed_only_on_purpose():
    said = {"nvidia_key_url": "http://mirror.lab.test/nvidia/gpgkey",
            "engine_repo_url": "http://mirror.lab.test/docker"}
    with pytest.raises(InventoryError, match="nvidia_key_url = .*; engine_repo_url = .*: plain http://"):
        from_host_data("host1", said)
    assert from_host_data("host1", {**said, "allow_plain_http": True}).nvidia_key_url == said["nvidia_key_url"]
    # Apt repositories are signed: plain http:// is theirs to use.
    assert from_host_data("host1", {"nvidia_repo_url": "http://mirror.lab.test/nvidia/$(ARCH)"})


def test_every_setting_that_names_a_trait_names_a_real_one_and_reaches_it_only_where_its_concern_applies():
    """The settings → traits table (one declaration per setting, see settings.trait) cannot name a trait that
    does not exist: a typo would be a setting that silently does nothing."""
    from jupyterhub.app import JupyterHub
    from ldapauthenticator import LDAPAuthenticator
    from nativeauthenticator import NativeAuthenticator
    from oauthenticator.azuread import AzureAdOAuthenticator
    from oauthenticator.gitlab import GitLabOAuthenticator
    from oauthenticator.oauth2 import OAuthenticator

    from gpudockerspawner import GPUDockerSpawner
    from jupyterhub_gpu.settings import hub_traits
    from jupyterhub_gpu_accounts.native import DeployedNativeAuthenticator

    classes = {cls.__name__: cls for cls in (GPUDockerSpawner, JupyterHub, LDAPAuthenticator, NativeAuthenticator,
                                             DeployedNativeAuthenticator, AzureAdOAuthenticator,
                                             GitLabOAuthenticator, OAuthenticator)}
    named = 0
    for name, field in HubSettings.model_fields.items():
        target = (field.json_schema_extra or {}).get("trait")
        if target:
            owner, trait = target.rsplit(".", 1)
            assert trait in classes[owner].class_traits(config=True), (name, target)
            named += 1
    assert named >= 25
    ldap = from_host_data("h", {"authenticator": "ldap", "allow_all": True, "ldap_server_address": "ldap.example.org",
                                "ldap_bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
                                "ldap_valid_username_regex": "^[a-z]{3,8}$"})
    traits = hub_traits(ldap)
    assert traits["LDAPAuthenticator.valid_username_regex"] == "^[a-z]{3,8}$"
    assert traits["LDAPAuthenticator.server_address"] == "ldap.example.org"
    assert not any(key.startswith("NativeAuthenticator.") for key in traits)
    assert "LDAPAuthenticator.server_address" not in hub_traits(HubSettings())
    with pytest.raises(InventoryError, match=r"ldap_valid_username_regex = '\[a-z': not a regular expression"):
        from_host_data("h", {"ldap_valid_username_regex": "[a-z"})


def test_gpu_groups_are_names_or_rules_and_the_deploy_says_which_in_a_line():
    from jupyterhub_gpu.summary import gpu_access

    named = from_host_data("host1", {"gpu_groups": ["lab"], "gpu_on_exhausted": "cpu"})
    assert named.gpu_groups == from_host_data("host1", {"gpu_groups": {"lab": {}}}).gpu_groups
    assert gpu_access(named) == ("GPUs: members of lab may have one; a spawn that finds none free for it is started "
                                 "CPU-only")
    ruled = from_host_data("host1", {"gpu_on_exhausted": "wait", "gpu_groups": {
        "students": {"max_gpus": 2}, "research": {"gpus_per_user": 2}}})
    assert gpu_access(ruled) == ("GPUs: by group: students 1 per server, at most 2 together; research 2 per server; a "
                                 "spawn that finds none free for it is put in line for the next GPU released (for up "
                                 "to 30 min)")
    assert gpu_access(HubSettings()) == ("GPUs: everyone may have one; a spawn that finds none free for it is refused "
                                         "with a message")
