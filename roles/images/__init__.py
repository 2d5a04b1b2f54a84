"""Ensure the hub and single-user images on the host, each tagged by a hash of what went into it: built once
on the controller and shipped to the hosts that lack them, or built on each host (``image_build``)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.docker import DockerImage
from pyinfra.facts.files import Sha256File
from pyinfra.operations import docker, files

from jupyterhub_gpu import remote
from jupyterhub_gpu.apt import ensure_installed
from jupyterhub_gpu.facts import ImagesInUse
from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render
from roles.images import controller
from roles.images.recipes import (
    BUILT_PREFIX,
    HOST_CA_BUNDLE,
    TEMPLATES,
    BaseRecipe,
    ImageRecipe,
    base_recipe,
    image_recipes,
    jupyterhub_pin,
)

__all__ = ["Images", "ensure_images", "jupyterhub_pin", "prune_unused"]


@dataclass(frozen=True)
class Images:
    hub: str
    proxy: str
    singleuser: str
    # Each offered image profile's image, by profile name, in the settings' order.
    profiles: dict[str, str] = field(default_factory=dict)


def _pull_or_debootstrap(state, host, base: BaseRecipe):
    pulled, _ = remote.run(state, host, StringCommand("docker", "pull", "-q", QuoteString(base.ref), "&&",
                                                      "docker", "tag", QuoteString(base.ref), QuoteString(base.tag)))
    if pulled:
        return True
    if base.fallback == "none":
        raise RuntimeError(f"cannot pull base image {base.ref} and base_image_fallback is 'none'")
    host.log(f"cannot pull {base.ref}: building the base image {base.tag} with debootstrap from {base.mirror} "
             f"({base.suite}) instead", log_func=logger.warning)
    script = render(TEMPLATES, "debootstrap.sh.j2", suite=base.suite, mirror=base.mirror, components=base.components,
                    tag=base.tag)
    built, output = remote.run(state, host, StringCommand("sh", "-c", QuoteString(script)))
    if not built:
        raise RuntimeError(f"debootstrap of {base.suite} from {base.mirror} failed:\n{output.stderr}")
    return True


@operation(is_idempotent=True)
def base_image(base: BaseRecipe):
    """
    Make the base image present: pull it and tag it, or, where no registry answers, build it with
    debootstrap from the host's own distribution mirror and ``docker import`` it.
    """
    if host.get_fact(DockerImage, object_id=base.tag):
        host.noop(f"base image {base.tag} is present")
        return
    yield FunctionCommand(_pull_or_debootstrap, (base,), {})


@operation(is_idempotent=True)
def shipped(recipe: ImageRecipe, base: BaseRecipe):
    """Make ``recipe``'s image present by building it once on the controller and loading it here."""
    if host.get_fact(DockerImage, object_id=recipe.tag):
        host.noop(f"image {recipe.tag} is present")
        return
    yield FunctionCommand(controller.ship, (recipe, base), {})


@operation(is_idempotent=True)
def copied(src: str, dest: str, sha256: str):
    """Copy a file that is already on the host, unless ``dest`` already has this content."""
    if host.get_fact(Sha256File, path=dest) == sha256:
        host.noop(f"{dest} already holds {src} (sha256 {sha256[:12]})")
        return
    yield StringCommand("install", "-m", "644", QuoteString(src), QuoteString(dest))


@operation(is_idempotent=True)
def pulled(image: str):
    """Pull an image that is not on the host yet."""
    if host.get_fact(DockerImage, object_id=image):
        host.noop(f"image {image} is present")
        return
    yield StringCommand("docker", "pull", "-q", QuoteString(image))


def _runs_here(for_servers_only: bool):
    """Which images a host needs: a cluster's GPU nodes only those of user servers. (A cluster's hub host keeps
    them too: the hub reads a server image's command from it.)"""
    def needed(recipe: ImageRecipe) -> bool:
        return not for_servers_only or recipe.name == "singleuser" or recipe.name.startswith("profile-")

    return needed


@deploy("Images")
def ensure_images(target: Target, for_servers_only: bool = False) -> Images:
    """The images, tagged alike on every host; ``for_servers_only``: only those of user servers (a GPU node)."""
    settings = target.settings
    base = base_recipe(target)
    needed = _runs_here(for_servers_only)
    where = settings.image_build
    if where == "controller":
        where, why = build_where(where, controller.engine_version(), controller.engine_architecture(),
                                 target.profile.arch)
        if why:
            host.log(why, log_func=logger.warning)

    if where == "controller":
        recipes = image_recipes(target, controller.ca_bundle_sha256())
        if any(map(needed, recipes)):
            ensure_installed(["zstd"], "to load the images shipped from the controller")
        for recipe in filter(needed, recipes):
            _say_if_large(recipe)
            shipped(name=f"{recipe.name} image {recipe.tag} (built once on the controller)", recipe=recipe, base=base)
    else:
        base_image(name=f"Base image {base.tag}", base=base)
        recipes = image_recipes(target, target.profile.ca_bundle_sha256)
        for recipe in filter(needed, recipes):
            _say_if_large(recipe)
            _build_here(target, recipe)

    tags = {recipe.name: recipe.tag for recipe in recipes}
    if settings.singleuser_image:
        pulled(name=f"Single-user image {settings.singleuser_image}", image=settings.singleuser_image)
        tags["singleuser"] = settings.singleuser_image
    profiles = {}
    for profile in target.offered_profiles:
        if profile.image:
            pulled(name=f"{profile.name} profile image {profile.image}", image=profile.image)
        profiles[profile.name] = profile.image or tags.get(f"profile-{profile.slug}", tags["singleuser"])
    return Images(hub=tags["hub"], proxy=tags["proxy"], singleuser=tags["singleuser"], profiles=profiles)


def build_where(image_build: str, engine: str | None, engine_arch: str, host_arch: str) -> tuple[str, str]:
    """Where this host's images are built, and why not where ``image_build`` says (empty where they are): an image
    built on the controller runs only on hosts of its architecture (an Apple-silicon laptop's are arm64), so a host of
    another builds its own, as a host does where the controller has no engine."""
    if image_build != "controller":
        return image_build, ""
    if engine is None:
        return "target", "the controller has no Docker engine that answers: each host builds its own images"
    if engine_arch and host_arch and controller.machine(engine_arch) != controller.machine(host_arch):
        return "target", (f"the controller's Docker engine builds {engine_arch} images and this host is {host_arch}: "
                          "it builds its own images")
    return "controller", ""


def _say_if_large(recipe: ImageRecipe) -> None:
    if recipe.large and not host.get_fact(DockerImage, object_id=recipe.tag):
        host.log(f"the {recipe.title} image {recipe.tag} is several GB: building and loading it takes minutes "
                 "(once; later deploys reuse it)", log_func=logger.warning)


def _build_here(target: Target, recipe: ImageRecipe) -> None:
    context = f"{target.layout.build}/{recipe.name}"
    files.directory(name=f"{recipe.name} build context", path=f"{context}/ca", mode="755")
    for relative, content in recipe.files.items():
        files.put(name=f"{recipe.name} {relative}", src=io.BytesIO(content), dest=f"{context}/{relative}", mode="644")
    if recipe.builder_ca:
        copied(name=f"{recipe.name} build trusts the host's CA store", src=HOST_CA_BUNDLE,
               dest=f"{context}/ca/host.pem",
               sha256=recipe.builder_ca)
    docker.build(name=f"{recipe.name} image {recipe.tag}", path=context, tags=[recipe.tag])


@operation(is_idempotent=True)
def unused_images_removed(current: list[str], keep: int):
    """
    Remove earlier tags of the ``current`` images' repositories that no container uses, but the ``keep``
    newest of them (for a rollback). Run after the services are up on ``current``.
    """
    repositories = sorted({image.rsplit(":", 1)[0] for image in current})
    found = host.get_fact(ImagesInUse, repositories=repositories)
    used = set(found["used"]) | set(current)
    removable = []
    for repository in repositories:
        earlier = [image for image in found["tags"].get(repository, []) if image not in current]
        removable += [image for image in earlier[keep:] if image not in used]
    if not removable:
        host.noop(f"no unused image to remove ({keep} earlier kept per repository for a rollback)")
        return
    yield StringCommand("docker", "image", "rm", *(QuoteString(image) for image in removable))


def prune_unused(target: Target, images: Images) -> None:
    """Once the hub runs on ``images``: earlier built images go, but ``keep_previous_images`` of each."""
    built = sorted({image for image in (images.hub, images.proxy, images.singleuser, *images.profiles.values())
                    if image.startswith(BUILT_PREFIX)})
    unused_images_removed(name="Unused earlier images removed", current=built,
                          keep=target.settings.keep_previous_images)
