"""No setting can inject a command, YAML or Python: each value is refused with a message that names its
setting, or it reaches every generated file as data that parses back to itself and every planned command as
one quoted argument. Checked for hand-picked kinds of bad input, and for random ones (hypothesis)."""

from __future__ import annotations

import json
import shlex
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jupyterhub_gpu.facts import GPU, GPUInventory, HostProfile
from jupyterhub_gpu.settings import HubSettings, InventoryError, from_host_data
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import contract
from roles import images, provision, secrets, services, tls
from tests.plan import commands_of, fresh_host_facts, plan

PROFILE = HostProfile(os_id="debian", os_version="12", os_codename="bookworm", arch="x86_64", pid1="sshd",
                      hostname="gpubox", ipv4=("10.0.0.5",), apt_mirrors=("http://deb.debian.org/debian",))
GPUS = GPUInventory("/usr/bin/nvidia-smi", (GPU("0", "GPU-0a0a0a0a-0000-4000-8000-000000000000", "A100", 81920),))

# Kinds of bad input, each refused before any change with a message that names its setting.
REFUSED = [
    ("install_dir", "/opt/x;id>/tmp/pwned;:"),
    ("install_dir", "/opt/jupyterhub-gpu\nprivileged: true"),
    ("install_dir", "/"),
    ("install_dir", "/etc"),
    ("install_dir", "/opt/$(id)"),
    ("install_dir", "/opt/a b"),
    ("install_dir", "/opt/../etc"),
    ("install_dir", "relative/path"),
    ("network_name", "jupyternet\n"),
    ("network_name", "jupyter net"),
    ("network_name", "net;rm -rf /"),
    ("compose_project", "hub\nservices: {}"),
    ("acme_server", "https://acme.example.org/$(id)"),
    ("acme_server", "https://acme.example.org/`id`"),
    ("acme_server", "https://acme.example.org/dir?x=1;id"),
    ("acme_server", "ftp://acme.example.org/dir"),
    ("nvidia_key_url", "https://nvidia.github.io/gpgkey | sh"),
    ("nvidia_key_url", "https://nvidia.github.io/$(ARCH)/gpgkey"),
    ("nvidia_repo_url", "https://nvidia.github.io/deb/$(ARCH)/$(id)"),
    ("nvidia_repo_url", "https://nvidia.github.io/deb/$(ARCH)\ndeb http://evil.example.org/ /"),
    ("debootstrap_mirror", "http://deb.debian.org/debian; id"),
    ("engine_repo_url", "https://download.docker.com/linux'"),
    ("hub_names", ["hub.example.org\n"]),
    ("hub_names", ["hub.example.org;id"]),
    ("hub_addresses", ["10.0.0.1; id"]),
    ("admin_users", ["admin; id"]),
    ("admin_users", ["Admin"]),
    ("allowed_users", ["eve\n"]),
    ("sudo_groups", ["sudo'ers"]),
    ("user_mem_limit", "8G; id"),
    ("singleuser_image", "image:tag; id"),
    ("singleuser_packages", ["jupyterlab==4.6.6; id"]),
    ("singleuser_packages", ["--index-url=http://evil.example.org/ x==1"]),
    ("nvidia_toolkit_version", "1.17.8-1 nvidia-driver"),
    ("acme_dns_plugin", "cloudflare; id"),
    ("oauth_client_id", "hub id"),
    ("oauth_scopes", ["openid profile"]),
    ("ldap_bind_dn_template", ["uid={username},ou=people\n,dc=x"]),
    ("wsl_distribution", "Ubuntu; id"),
    ("gpu_ids", "0;1"),
]


@pytest.mark.parametrize(("key", "value"), REFUSED, ids=[f"{k}-{i}" for i, (k, _) in enumerate(REFUSED)])
def test_each_kind_of_bad_input_is_refused_naming_its_setting(key, value):
    with pytest.raises(InventoryError) as error:
        from_host_data("host1", {key: value})
    assert f"{key} = {value!r}" in str(error.value) or f"{key}.0 = {value!r}" in str(error.value)


def test_at_least_25_kinds_of_bad_input_are_refused():
    assert len(REFUSED) >= 25


def _string_settings() -> list[tuple[str, bool]]:
    """(name, is a list) of every setting that holds text."""
    found = []
    for name, field in HubSettings.model_fields.items():
        annotation = field.annotation
        text = {str, Path}
        args = set(typing.get_args(annotation)) | {annotation}
        flat = set()
        for arg in args:
            flat |= set(typing.get_args(arg)) | {typing.get_origin(arg) or arg}
            for inner in typing.get_args(arg):
                flat |= set(typing.get_args(inner)) | {inner}
        if flat & text or any(getattr(arg, "__origin__", None) is typing.Annotated for arg in flat):
            found.append((name, typing.get_origin(annotation) is list or list in flat))
    return found


STRING_SETTINGS = _string_settings()
SHELL = [";", "$(id)", "`id`", "'", '"', "\\", "|", "&&", ">", "#", "${HOME}", ":", "{}", "ü", "*"]
NASTY = SHELL + ["\n", " ", "\t", "\r"]
# In every value, so that finding the value in a command is never an accident of short strings.
MARK = "zq9"
PREFIXES = ["", "a", "hub", "/opt/hub", "https://h.example.org/", "uid={username},ou=p,dc=x", "x==1", "GPU-1"]


def _carried_as_one_argument(value: str, command: str) -> bool:
    """Where ``value`` appears in ``command``, the shell sees it whole inside one word."""
    if value not in command:
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return any(value in word for word in words)


# Shapes that each setting's grammar accepts, with room for whatever the grammar lets through.
SHAPES = {
    "acme_email": "{}@example.org", "ldap_user_search_base": "ou={},dc=example,dc=org",
    "ldap_search_user": "cn={},dc=example,dc=org", "ldap_bind_dn_template": "uid={{username}},ou={},dc=o",
    "allowed_groups": "{}", "oauth_client_id": "hub{}", "oauth_username_claim": "name{}", "oauth_groups_claim": "g{}",
    "oauth_scopes": "openid{}", "install_dir": "/opt/hub{}", "acme_server": "https://acme.example.org/{}",
    "nvidia_repo_url": "https://nvidia.example.org/deb/{}/$(ARCH)", "wsl_distribution": "Ubuntu{}",
}
# Settings in use: a certificate from certbot and Docker's repository, so that those values reach commands.
BASE = {"image_build": "target", "tls_mode": "letsencrypt", "acme_email": "ops@example.org",
        "hub_names": ["hub.example.org"], "engine_source": "docker-ce"}


@st.composite
def setting_and_value(draw):
    # Half the cases are shapes a grammar accepts, filled with shell syntax: those must reach files and
    # commands as data; the other half are anything, which must be refused by name or carried the same way.
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(SHAPES)))
        is_list = dict(STRING_SETTINGS)[name]
        value = SHAPES[name].format(MARK + "".join(draw(st.lists(st.sampled_from(SHELL), min_size=1, max_size=3))))
    else:
        name, is_list = draw(st.sampled_from(STRING_SETTINGS))
        nasty = "".join(draw(st.lists(st.sampled_from(NASTY), min_size=1, max_size=3)))
        safe = draw(st.text(alphabet="abcxyz019._-/", max_size=4))
        value = draw(st.sampled_from(PREFIXES)) + MARK + nasty + safe
    return name, is_list, value


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=setting_and_value())
def test_a_value_is_refused_naming_its_setting_or_carried_literally(monkeypatch, case):
    name, is_list, value = case
    data = {**BASE, name: [value] if is_list else value}
    try:
        settings_ = from_host_data("host1", data)
    except InventoryError as error:
        assert name in str(error), str(error)
        event("refused")
        return
    event(f"accepted for {name}")
    target = Target(settings_, PROFILE, GPUS)
    accepted = getattr(settings_, name)
    accepted = str(accepted[0] if is_list else accepted)

    built = images.Images(hub="hub:1", singleuser="singleuser:1", proxy="proxy:1")
    document = contract.dump(services.hub_settings(target, built))
    # Data that survives JSON as it is, and reads back as the same contract.
    assert json.loads(json.dumps(document)) == document
    assert contract.load(json.loads(json.dumps(document))) == services.hub_settings(target, built)
    hub_secrets = secrets.HubSecrets(paths={"cookie_secret": f"{target.install_dir}/secrets/cookie_secret"})
    compose = services.compose_project(target, built, tls.Certificate(f"{target.install_dir}/tls"), hub_secrets)
    assert yaml.safe_load(services._yaml(compose, "# heading\n").getvalue()) == compose

    for command in commands_of(plan(monkeypatch, fresh_host_facts(), provision, target)):
        assert _carried_as_one_argument(accepted, command), (name, accepted, command)
