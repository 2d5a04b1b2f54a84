"""Ensure the base, hub and single-user images on the host, each tagged by a hash of what went into it."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.docker import DockerImage
from pyinfra.facts.files import Sha256File
from pyinfra.operations import docker, files

from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render
from roles.images.wheel import built_wheel, ensure_wheel, wheel_sha256

TEMPLATES = Path(__file__).parent / "templates"
FILES = Path(__file__).parent / "files"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Images:
    hub: str
    singleuser: str


def hub_requirements() -> str:
    return (TEMPLATES / "hub-requirements.txt").read_text()


def jupyterhub_pin() -> str:
    (pin,) = re.findall(r"^jupyterhub==\S+$", hub_requirements(), flags=re.MULTILINE)
    return pin


def _pull_or_debootstrap(state, host, ref, tag, fallback, suite, mirror, components):
    pulled, _ = host.run_shell_command(StringCommand("docker", "pull", "-q", QuoteString(ref), "&&",
                                                     "docker", "tag", QuoteString(ref), QuoteString(tag)))
    if pulled:
        return True
    if fallback == "none":
        raise RuntimeError(f"cannot pull base image {ref} and base_image_fallback is 'none'")
    host.log(
        f"cannot pull {ref}: building the base image {tag} with debootstrap from {mirror} ({suite}) instead",
        log_func=logger.warning,
    )
    script = render(TEMPLATES, "debootstrap.sh.j2", suite=suite, mirror=mirror, components=components, tag=tag)
    built, output = host.run_shell_command(StringCommand("sh", "-c", QuoteString(script)))
    if not built:
        raise RuntimeError(f"debootstrap of {suite} from {mirror} failed:\n{output.stderr}")
    return True


@operation(is_idempotent=True)
def base_image(ref: str, tag: str, fallback: str, suite: str, mirror: str, components: str):
    """
    Make ``tag`` present: pull ``ref`` and tag it, or, where no registry answers, build it with
    debootstrap from the host's own distribution mirror and ``docker import`` it.
    """
    if host.get_fact(DockerImage, object_id=tag):
        host.noop(f"base image {tag} is present")
        return
    yield FunctionCommand(_pull_or_debootstrap, (ref, tag, fallback, suite, mirror, components), {})


@operation(is_idempotent=True)
def copied(src: str, dest: str, sha256: str):
    """Copy a file that is already on the host, unless ``dest`` already has this content."""
    if host.get_fact(Sha256File, path=dest) == sha256:
        host.noop(f"{dest} already holds {src} (sha256 {sha256[:12]})")
        return
    yield StringCommand("install", "-m", "644", src, dest)


@operation(is_idempotent=True)
def pulled(image: str):
    """Pull an image that is not on the host yet."""
    if host.get_fact(DockerImage, object_id=image):
        host.noop(f"image {image} is present")
        return
    yield StringCommand("docker", "pull", "-q", image)


def _context_hash(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@deploy("Images")
def ensure_images(target: Target) -> Images:
    settings = target.settings
    build_dir = f"{target.install_dir}/build"
    base_image(
        name=f"Base image {target.base_tag}",
        ref=target.base_image,
        tag=target.base_tag,
        fallback=settings.base_image_fallback,
        suite=target.profile.os_codename,
        mirror=target.debootstrap_mirror,
        components=target.debootstrap_components,
    )

    # What every image build trusts, and so what every image tag depends on.
    host_ca = target.profile.ca_bundle_sha256 if settings.build_trust_host_ca else ""
    extra_ca = b"".join(path.read_bytes() for path in settings.build_extra_ca_certs)
    trust_ca = bool(host_ca or extra_ca)

    wheel = built_wheel().name
    contexts = {
        "hub": {"requirements.txt": hub_requirements()},
        "singleuser": {
            "requirements.txt": "\n".join([jupyterhub_pin(), *settings.singleuser_packages]) + "\n",
            "start-singleuser.sh": (FILES / "start-singleuser.sh").read_text(),
        },
    }
    if settings.singleuser_image:
        del contexts["singleuser"]

    tags = {}
    for image, context_files in contexts.items():
        context = f"{build_dir}/{image}"
        dockerfile = render(TEMPLATES, f"{image}.Dockerfile.j2", base=target.base_tag, trust_ca=trust_ca, wheel=wheel)
        files.directory(name=f"{image} build context", path=f"{context}/ca", mode="755")
        files.put(name=f"{image} Dockerfile", src=io.StringIO(dockerfile), dest=f"{context}/Dockerfile", mode="644")
        for filename, text in context_files.items():
            files.put(name=f"{image} {filename}", src=io.StringIO(text), dest=f"{context}/{filename}", mode="644")
        if host_ca:
            copied(name=f"{image} build trusts the host's CA store", src=HOST_CA_BUNDLE,
                   dest=f"{context}/ca/host.pem", sha256=host_ca)
        if extra_ca:
            files.put(name=f"{image} extra CA certificates", src=io.BytesIO(extra_ca),
                      dest=f"{context}/ca/extra.pem", mode="644")
        inputs = [target.base_tag, dockerfile, *context_files.values(), host_ca, extra_ca]
        if image == "hub":
            ensure_wheel(context)
            inputs.append(wheel_sha256())
        tags[image] = f"jupyterhub-gpu/{image}:{_context_hash(*inputs)}"
        docker.build(name=f"{image} image {tags[image]}", path=context, tags=[tags[image]])

    if settings.singleuser_image:
        pulled(name=f"Single-user image {settings.singleuser_image}", image=settings.singleuser_image)
        tags["singleuser"] = settings.singleuser_image
    return Images(**tags)
