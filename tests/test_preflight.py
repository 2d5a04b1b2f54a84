"""What preflight learns from a host's profile, and what it derives from it."""

import pytest

from jupyterhub_gpu.facts import parse_profile
from jupyterhub_gpu.settings import HubSettings
from jupyterhub_gpu.target import Target

UBUNTU_WSL_OUTPUT = """os_id=ubuntu
os_version=24.04
os_codename=noble
arch=x86_64
pid1=init
hostname=DESKTOP-42
wsl=1
docker_cli=1
docker_server=28.4.0
docker_os=Docker Desktop
compose=2.39.1
ipv4=lo 127.0.0.1/8
ipv4=eth0 172.28.144.5/20
ipv4=docker0 172.17.0.1/16
ipv4=br-5e1f0a 172.18.0.1/16
apt_source=deb http://archive.ubuntu.com/ubuntu/ noble main restricted
apt_source=deb http://security.ubuntu.com/ubuntu/ noble-security main
ca_bundle_sha256=ab12""".splitlines()

DEBIAN_SOURCES_OUTPUT = """os_id=debian
os_version=12
os_codename=bookworm
pid1=systemd
hostname=gpu-server
wsl=0
ipv4=enp3s0 192.0.2.10/24
apt_source=URIs: http://mirror.example.net/debian
apt_source=URIs: http://deb.debian.org/debian-security""".splitlines()


def test_profile_of_a_wsl_host_with_docker_desktop():
    profile = parse_profile(UBUNTU_WSL_OUTPUT)
    assert profile.wsl and not profile.systemd
    assert profile.docker_desktop and profile.compose == "2.39.1"
    # Docker's bridges come and go; a certificate naming them would be re-issued on every run.
    assert profile.ipv4 == ("172.28.144.5",)
    assert profile.apt_mirrors == ("http://archive.ubuntu.com/ubuntu",)


def test_ubuntu_base_image_and_debootstrap_fallback_follow_the_host():
    target = Target(HubSettings(), parse_profile(UBUNTU_WSL_OUTPUT))
    assert target.base_image == "ubuntu:noble"
    assert target.base_tag == "jupyterhub-gpu/base:ubuntu-noble"
    assert target.debootstrap_mirror == "http://archive.ubuntu.com/ubuntu"
    assert target.debootstrap_components == "main,universe"
    assert target.names == ("desktop-42", "localhost")
    # WSL2's address changes at each start: the certificate names the loopback address only.
    assert target.addresses == ("127.0.0.1",)


def test_debian_deb822_sources_give_the_mirror_and_settings_override():
    profile = parse_profile(DEBIAN_SOURCES_OUTPUT)
    assert profile.systemd and not profile.docker_cli
    target = Target(HubSettings(), profile)
    assert (target.base_image, target.debootstrap_mirror) == ("debian:bookworm-slim", "http://mirror.example.net/debian")
    chosen = Target(
        HubSettings(hub_names=["hub.example.org"], hub_addresses=["192.0.2.10"], base_image="python:3.12-slim"),
        profile,
    )
    assert chosen.names == ("hub.example.org",) and chosen.addresses == ("192.0.2.10",)
    assert chosen.base_tag == "jupyterhub-gpu/base:python-3.12-slim"


def test_a_hub_that_sends_ldap_passwords_in_the_clear_says_so():
    from pyinfra.api import Config, Inventory, State
    from pyinfra.context import ctx_host, ctx_state

    from jupyterhub_gpu.facts import HostProfile
    from jupyterhub_gpu.summary import HostSummary, warn_if_insecure

    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    ldap = {"authenticator": "ldap", "ldap_server_address": "ldap.example.org", "allow_all": True,
            "ldap_bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"]}
    said = {}
    with ctx_state.use(state), ctx_host.use(inventory.get_host("@local")):
        for tls in ("insecure", "on_connect"):
            said[tls] = []
            warn_if_insecure(HostSummary(said[tls]), Target(HubSettings(**ldap, ldap_tls=tls), HostProfile()))
    assert said == {"insecure": [(True, "ldap_tls is insecure: every login sends its password to ldap.example.org "
                                        "in the clear; use on_connect (ldaps) or before_bind (STARTTLS)")],
                    "on_connect": []}


def test_a_profile_may_ask_only_for_kinds_of_gpu_the_host_has_or_in_a_cluster_a_node_has(monkeypatch):
    from pathlib import Path

    from gpudockerspawner.nvidia import units
    from jupyterhub_gpu.facts import GPUInventory
    from jupyterhub_gpu.settings import InventoryError, from_host_data
    from roles import preflight
    from roles.preflight import _check_gpu_kinds

    fixtures = Path(__file__).resolve().parents[1] / "spawner" / "tests" / "fixtures" / "nvidia-smi"
    lab = GPUInventory("/usr/bin/nvidia-smi", tuple(units((fixtures / "lab-L.txt").read_text(),
                                                          (fixtures / "lab-q.xml").read_text())))

    def profiles(*kinds):
        return from_host_data("gpubox", {"image_profiles": [{"name": "Standard"},
                                                            {"name": "Slice", "gpu": True, "gpu_kinds": list(kinds)}]})

    _check_gpu_kinds("gpubox", profiles("NVIDIA A100-SXM4-80GB MIG 1g.10gb", "NVIDIA GeForce RTX 4090"), lab, None)
    with pytest.raises(InventoryError) as refused:
        _check_gpu_kinds("gpubox", profiles("NVIDIA A100-SXM4-80GB"), lab, None)  # in MIG mode: only its slices
    assert ("image_profiles: 'Slice' asks for gpu_kinds 'NVIDIA A100-SXM4-80GB', which the host does not have; it has "
            "'NVIDIA A100-SXM4-80GB MIG 1g.10gb', 'NVIDIA A100-SXM4-80GB MIG 3g.40gb', 'NVIDIA GeForce RTX 4090' (as "
            "nvidia-smi names them)") in str(refused.value)
    groups = from_host_data("gpubox", {"gpu_groups": {"students": {"gpu_kinds": ["NVIDIA H100 80GB HBM3"]}}})
    with pytest.raises(InventoryError, match=r"gpu_groups\['students'\] asks for gpu_kinds 'NVIDIA H100 80GB HBM3'"):
        _check_gpu_kinds("gpubox", groups, lab, None)
    with pytest.raises(InventoryError, match="gpu_kinds .* is for a profile with gpu: true"):
        from_host_data("gpubox", {"image_profiles": [{"name": "Standard", "gpu_kinds": ["NVIDIA GeForce RTX 4090"]}]})
    # In a cluster the hub host checks them against every GPU node's units; a node, which has only some, does not.
    from types import SimpleNamespace

    from jupyterhub_gpu.cluster import Cluster

    nodes = {"gpu1": lab, "gpu2": GPUInventory("/usr/bin/nvidia-smi", ())}
    monkeypatch.setattr(preflight, "state", SimpleNamespace(inventory=SimpleNamespace(
        get_host=lambda name: SimpleNamespace(get_fact=lambda fact: nodes[name]))))
    manager = Cluster(manager="hub", nodes=("gpu1", "gpu2"), this_host="hub")
    _check_gpu_kinds("hub", profiles("NVIDIA GeForce RTX 4090"), GPUInventory(), manager)
    with pytest.raises(InventoryError, match="'NVIDIA H100 80GB HBM3', which none of the cluster's GPU nodes has; "
                                             "they have 'NVIDIA A100-SXM4-80GB MIG 1g.10gb'"):
        _check_gpu_kinds("hub", profiles("NVIDIA H100 80GB HBM3"), GPUInventory(), manager)
    _check_gpu_kinds("gpu2", profiles("NVIDIA H100 80GB HBM3"), nodes["gpu2"],
                     Cluster(manager="hub", nodes=("gpu1", "gpu2"), this_host="gpu2"))


def test_the_closing_lines_name_each_unit_a_host_hands_out_with_what_it_is():
    """A lab host's closing lines: where the hub is, and each unit it hands out by index, kind and memory (a MIG
    device as the slice it is, never its GPU whole)."""
    from types import SimpleNamespace

    from jupyterhub_gpu.facts import GPUInventory, HostProfile
    from jupyterhub_gpu.summary import HostSummary, say_where_the_hub_is
    from testbed.nvidia import LAB_GPUS, units_of

    lab = Target(HubSettings(hub_names=["gpubox"]), HostProfile(hostname="gpubox"),
                 GPUInventory("/usr/bin/nvidia-smi", tuple(units_of(LAB_GPUS))), one_origin_why="the test's own")
    provisioned = SimpleNamespace(certificate=SimpleNamespace(ca="/opt/jupyterhub-gpu/ca/ca.crt", ca_remade_for=""),
                                  secrets=SimpleNamespace(admin_passwords={}), uptime=SimpleNamespace(said=[]))
    said = []
    say_where_the_hub_is(HostSummary(said), lab, provisioned)
    lines = [text for _, text in said]
    assert lines[0] == "JupyterHub answers at https://gpubox/"
    assert ("it hands out 5 GPUs, 1 per server: 0:0 MIG 3g.40gb slice of an A100-SXM4-80GB 39 GiB "
            "(MIG-1e099852-3624-56c0-8064-c5db1211e44f); 0:1 MIG 1g.10gb slice of an A100-SXM4-80GB 9 GiB "
            "(MIG-8243111b-d4c4-587a-a96d-da04583b36e2); 0:2 MIG 1g.10gb slice of an A100-SXM4-80GB 9 GiB "
            "(MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6); 1 GeForce RTX 4090 23 GiB "
            "(GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7); 2 GeForce RTX 4090 23 GiB "
            "(GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e)") in lines
    assert "browsers trust it once they import the local CA /opt/jupyterhub-gpu/ca/ca.crt" in lines

    # A CA made anew (the hub's names or addresses changed) is said as a warning: the trust given the old one is gone.
    provisioned.certificate.ca_remade_for = "DNS:gpubox,DNS:gpubox.lab.example.org,IP:127.0.0.1"
    said.clear()
    say_where_the_hub_is(HostSummary(said), lab, provisioned)
    assert (True, "the local CA was made anew, for DNS:gpubox,DNS:gpubox.lab.example.org,IP:127.0.0.1 (the hub's "
            "names or addresses changed, and a CA vouches only for those it was made for): browsers that trusted the "
            "one before refuse the hub until they import /opt/jupyterhub-gpu/ca/ca.crt again") in said
    assert not any("once they import" in text for _, text in said)


def test_a_port_is_held_by_a_listener_or_by_a_container_docker_publishes_it_for(monkeypatch):
    """What the port check reads: a process listening (named with its pid, by pyinfra's Port fact), Docker's proxy
    for a published container, or, on an engine without its userland proxy, a container Docker publishes the port
    for with nobody listening."""
    from types import SimpleNamespace

    from pyinfra.facts.server import Port

    from jupyterhub_gpu import facts
    from jupyterhub_gpu.facts import PortHolding, PublishedFor, port_holding

    assert PublishedFor().process(["jupyterhub-proxy", ""]) == ("jupyterhub-proxy",)

    def held(listener, containers):
        answers = {Port: listener, PublishedFor: containers}
        monkeypatch.setattr(facts, "host", SimpleNamespace(get_fact=lambda fact, port: answers[fact]))
        return port_holding(443)

    assert held((None, None), ()) == PortHolding()
    assert held(None, ()) == PortHolding()  # pyinfra's answer where ss printed nothing
    assert held(("nginx", 812), ()).held_by() == "nginx (pid 812) holds it"
    proxy = held(("docker-proxy", 90), ("jupyterhub-proxy",))
    assert proxy.containers == ("jupyterhub-proxy",)
    no_userland_proxy = held((None, None), ("web",))
    assert no_userland_proxy.listening
    assert no_userland_proxy.held_by() == "Docker publishes it for the container 'web'"
