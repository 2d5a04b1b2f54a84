"""What goes into each image, wherever it is built: the base, and the hub and single-user images with their
build contexts, each tagged by a hash of everything that went into it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from jupyterhub_gpu.target import Target
from jupyterhub_gpu.templates import render
from roles.images.wheel import built_wheel

TEMPLATES = Path(__file__).parent / "templates"
# JupyterLab's GPU view, built into the single-user image (its build context's lab/).
LAB_EXTENSION = Path(__file__).resolve().parents[2] / "spawner" / "lab"
# What the extension's build makes or fetches there, never part of its source.
LAB_BUILT = {"node_modules", "lib", "labextension", "__pycache__", "tsconfig.tsbuildinfo", ".gitignore"}
FILES = Path(__file__).parent / "files"
# JupyterHub's single-user code without the hub's database layer (see the patch's header).
SINGLEUSER_PATCH = "jupyterhub-singleuser-no-db.patch"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Real-time collaboration in the built single-user image (the `collaboration` setting), for JupyterLab 4.6.
COLLABORATION = "jupyter-collaboration==5.0.4"


@dataclass(frozen=True)
class BaseRecipe:
    """The base image: ``ref`` pulled and tagged ``tag``, or debootstrapped from ``mirror`` where no registry
    answers (``fallback``)."""

    ref: str
    tag: str
    fallback: str
    suite: str
    mirror: str
    components: str


@dataclass(frozen=True)
class ImageRecipe:
    """An image built from ``files`` (the build context, Dockerfile included). The CA bundle of the machine
    that builds it is its ``ca/host.pem``: ``builder_ca`` is that bundle's sha256, part of the tag."""

    name: str
    tag: str
    files: dict[str, bytes] = field(hash=False)
    builder_ca: str
    # Several GB (a CUDA profile): the deploy says so before it builds, and shows the build's progress.
    large: bool = False
    title: str = ""


# The images the deploy builds are named under this prefix (and only those are ever pruned).
BUILT_PREFIX = "jupyterhub-gpu/"


def hub_requirements(settings=None) -> str:
    """The hub image's pip requirements: the deploy's pins, or the inventory's ``hub_packages``."""
    if settings is not None and settings.hub_packages:
        return "\n".join(settings.hub_packages) + "\n"
    return (TEMPLATES / "hub-requirements.txt").read_text()


def jupyterhub_pin(settings=None) -> str:
    """``jupyterhub==X``: the hub's version, which the single-user image matches."""
    (pin,) = re.findall(r"^jupyterhub==\S+$", hub_requirements(settings), flags=re.MULTILINE)
    return pin


def base_recipe(target: Target) -> BaseRecipe:
    return BaseRecipe(ref=target.base_image, tag=target.base_tag, fallback=target.settings.base_image_fallback,
                      suite=target.profile.os_codename, mirror=target.debootstrap_mirror,
                      components=target.debootstrap_components)


def _recipe(name: str, target: Target, builder_ca: str, files: dict[str, bytes], large: bool = False,
            title: str = "") -> ImageRecipe:
    digest = hashlib.sha256()
    for part in [target.base_tag.encode(), builder_ca.encode(), *(p.encode() + b"\0" + c for p, c in
                                                                   sorted(files.items()))]:
        digest.update(part)
        digest.update(b"\0")
    return ImageRecipe(name, f"{BUILT_PREFIX}{name}:{digest.hexdigest()[:16]}", files, builder_ca, large,
                       title or name)


def lab_overrides(settings) -> bytes:
    """JupyterLab's settings overrides for the built single-user image (its ``settings/overrides.json``): the news
    question and the check for releases, off unless ``jupyterlab_news`` (then JupyterLab's own defaults)."""
    notification = ({"fetchNews": "none", "checkForUpdates": True} if settings.jupyterlab_news
                    else {"fetchNews": "false", "checkForUpdates": False})
    return (json.dumps({"@jupyterlab/apputils-extension:notification": notification}, indent=2) + "\n").encode()


def lab_extension_files() -> dict[str, bytes]:
    """The GPU view's source (spawner/lab) for the single-user image's build, as ``lab/<path>``: what git keeps of
    it, not what a local build left beside it."""
    files = {}
    for path in sorted(LAB_EXTENSION.rglob("*")):
        relative = path.relative_to(LAB_EXTENSION)
        if path.is_file() and not LAB_BUILT & set(relative.parts) and path.suffix != ".pyc":
            files[f"lab/{relative.as_posix()}"] = path.read_bytes()
    return files


def image_recipes(target: Target, builder_ca_sha256: str) -> list[ImageRecipe]:
    """The images the host needs built; ``builder_ca_sha256`` is the builder's CA bundle (empty: none)."""
    settings = target.settings
    builder_ca = builder_ca_sha256 if settings.build_trust_host_ca else ""
    extra_ca = b"".join(path.read_bytes() for path in settings.build_extra_ca_certs)
    wheel = built_wheel()
    proxy = FILES / "proxy"
    contexts = {
        "hub": {"requirements.txt": hub_requirements(settings).encode(), wheel.name: wheel.read_bytes(),
                "start-hub.sh": (FILES / "start-hub.sh").read_bytes()},
        "proxy": {name: (proxy / name).read_bytes()
                  for name in ("requirements.txt", "package.json", "package-lock.json", "start-proxy.sh")},
    }
    # The single-user patch is made for this project's own JupyterHub pin; an inventory that pins another version
    # (hub_packages) gets JupyterHub's single-user code as released, slower to start but unchanged.
    patched = jupyterhub_pin(settings) == jupyterhub_pin()
    if not settings.singleuser_image:
        contexts["singleuser"] = {
            "requirements.txt": ("\n".join([jupyterhub_pin(settings), *settings.singleuser_packages,
                                            *([COLLABORATION] if settings.collaboration else [])]) + "\n").encode(),
            "start-singleuser.sh": (FILES / "start-singleuser.sh").read_bytes(),
            "overrides.json": lab_overrides(settings),
            **lab_extension_files(),
        }
        if patched:
            contexts["singleuser"][SINGLEUSER_PATCH] = (FILES / SINGLEUSER_PATCH).read_bytes()
    recipes = []
    for name, files in contexts.items():
        dockerfile = render(TEMPLATES, f"{name}.Dockerfile.j2", base=target.base_tag,
                            trust_ca=bool(builder_ca or extra_ca), wheel=wheel.name, service_uid=settings.service_uid,
                            patch=SINGLEUSER_PATCH if patched else "")
        files = {"Dockerfile": dockerfile.encode(), **files}
        if extra_ca:
            files["ca/extra.pem"] = extra_ca
        recipes.append(_recipe(name, target, builder_ca, files))
    standard = recipes[-1].tag if not settings.singleuser_image else settings.singleuser_image
    for profile in target.offered_profiles:
        if profile.image or not profile.packages:
            continue
        # On the standard image, which already trusts the builder's CAs.
        dockerfile = render(TEMPLATES, "profile.Dockerfile.j2", parent=standard)
        recipes.append(_recipe(f"profile-{profile.slug}", target, "", {
            "Dockerfile": dockerfile.encode(), "requirements.txt": ("\n".join(profile.packages) + "\n").encode()},
            large=profile.gpu, title=f"{profile.name} profile"))
    return recipes
