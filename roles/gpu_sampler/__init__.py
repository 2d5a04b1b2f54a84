"""Ensure the GPU sampler (gpudockerspawner.sampler) wherever the hub's GPUs are: each GPU's utilisation and memory,
read every gpu_sample_interval seconds, for the hub's GPU page, its Prometheus gauges and the GPU idleness signals.

One host: a container beside the hub in its Compose project (``compose_services``), given the driver's utilities by
a device request (``capabilities: [gpu, utility]``). A cluster: a global Swarm service on every node that takes user
servers (``ensure_cluster_sampler``), whose environment asks NVIDIA's runtime (the nodes' default) for every GPU's
utilities. Either way it answers on the hub's network only, under one name the hub resolves to every sampler; no
user container may reach it (the firewall on one host, each server's fence on a cluster). It runs as nobody, with a
read-only root, no capabilities and nothing of the host."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files

import gpudockerspawner.sampler
from gpudockerspawner.placement import SERVERS_LABEL
from jupyterhub_gpu.target import Target
from roles.images import Images

NAME = "jupyterhub-gpu-sampler"
PORT = 9400
NOBODY = "65534:65534"
SCRIPT = Path(gpudockerspawner.sampler.__file__)
# The label by which a cluster's sampler service says what it was made from: a change makes it anew.
SPEC_LABEL = "jupyterhub-gpu.sampler-spec"


def sampled(target: Target) -> bool:
    """Whether the hub's GPUs are sampled: a single host whose pool it hands out, or a cluster's hub."""
    return bool(target.gpu_pool) if not target.cluster else target.hands_out_gpus


def sampler_urls(target: Target) -> list[str]:
    """Where the hub's GPU service asks: by name on one host; on a cluster, Swarm's name for all of its tasks."""
    if not sampled(target):
        return []
    return [f"http://{'tasks.' if target.cluster else ''}{NAME}:{PORT}/"]


def compose_services(target: Target, images: Images) -> dict:
    """The sampler in the hub's Compose project on one host with GPUs (the hub image, which has gpudockerspawner);
    none elsewhere."""
    if not target.gpu_pool or target.cluster:
        return {}
    return {"gpu-sampler": {
        "image": images.hub,
        "container_name": NAME,
        "networks": [target.settings.network_name],
        "restart": "always",
        "entrypoint": ["python3", "-m", "gpudockerspawner.sampler"],
        "command": ["--port", str(PORT), "--interval", str(target.settings.gpu_sample_interval)],
        "environment": {"GPU_SAMPLER_NODE": target.profile.hostname},
        "user": NOBODY,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "deploy": {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": "all", "capabilities": ["gpu", "utility"]}]}}},
    }}


class ServiceLabel(FactBase):
    """A Swarm service's label, "" where the service has none, None where there is no such service."""

    def command(self, service: str, label: str) -> StringCommand:
        return StringCommand("docker", "service", "inspect", QuoteString(service), "--format",
                             QuoteString(f'label={{{{index .Spec.Labels "{label}"}}}}'), "2>/dev/null", "||", "true")

    def process(self, output):
        text = "".join(output).strip()
        if not text.startswith("label="):
            return None
        value = text[len("label="):]
        return "" if value == "<no value>" else value


@operation(is_idempotent=True)
def sampler_service(service: str, image: str, network: str, script: str, digest: str, interval: int):
    """A global service, one sampler on each node that takes user servers, on the hub's network; its script (on
    this host at ``script``, ``digest`` its content's) a Swarm config: the GPU nodes build only the servers' image,
    which has a Python but not gpudockerspawner."""
    spec = hashlib.sha256(f"{image} {network} {interval} {digest}".encode()).hexdigest()[:16]
    current = host.get_fact(ServiceLabel, service=service, label=SPEC_LABEL)
    if current == spec:
        host.noop(f"service {service} samples the GPUs of every node that takes user servers, every {interval} s")
        return
    config = f"{service}-{digest}"
    if current is not None:
        yield StringCommand("docker", "service", "rm", QuoteString(service))
    yield StringCommand("sh", "-c", QuoteString(
        f"docker config inspect {config} >/dev/null 2>&1 || docker config create {config} {script}"))
    yield StringCommand(
        "docker", "service", "create", "--detach", "--no-resolve-image", "--name", QuoteString(service),
        "--label", QuoteString(f"{SPEC_LABEL}={spec}"), "--mode", "global",
        "--constraint", QuoteString(f"node.labels.{SERVERS_LABEL}==true"),
        "--network", QuoteString(network), "--endpoint-mode", "dnsrr",
        "--config", QuoteString(f"source={config},target=/opt/gpu-sampler.py,mode=0444"),
        # NVIDIA's runtime (each GPU node's default) reads these: every GPU, the driver's utilities only.
        "--env", "NVIDIA_VISIBLE_DEVICES=all", "--env", "NVIDIA_DRIVER_CAPABILITIES=utility",
        "--env", QuoteString("GPU_SAMPLER_NODE={{.Node.Hostname}}"),
        "--user", NOBODY, "--read-only", "--cap-drop", "ALL", "--limit-cpu", "0.1", "--limit-memory", "64m",
        "--entrypoint", "python3", QuoteString(image),
        "/opt/gpu-sampler.py", "--port", str(PORT), "--interval", str(interval))
    # Older configs of the sampler that no service uses any more.
    yield StringCommand("sh", "-c", QuoteString(
        f"for c in $(docker config ls --quiet --filter name={service}-); do "
        f"[ \"$(docker config inspect --format '{{{{.Spec.Name}}}}' $c)\" = {config} ] || "
        "docker config rm $c >/dev/null 2>&1 || true; done"))


@deploy("GPU sampler")
def ensure_cluster_sampler(target: Target, images: Images) -> None:
    """On a cluster's hub host: the sampler service on the GPU nodes."""
    if not (target.cluster and target.cluster.is_manager and sampled(target)):
        return
    script = f"{target.install_dir}/gpu-sampler.py"
    files.put(name="GPU sampler's script", src=str(SCRIPT), dest=script, mode="644")
    sampler_service(name="GPU sampler on every GPU node", service=NAME, image=images.singleuser,
                    network=target.settings.network_name, script=script,
                    digest=hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12],
                    interval=target.settings.gpu_sample_interval)
