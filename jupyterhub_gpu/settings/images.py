"""The images: how they are built, and which profiles people pick from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from jupyterhub_gpu.settings.concern import Concern
from jupyterhub_gpu.settings.profiles import DEFAULT_PROFILES, ImageProfile
from jupyterhub_gpu.settings.types import HttpUrl, ImageRef, PinnedRequirement


class ImageSettings(Concern):
    """The images: how they are built, from what, and which image profiles users pick from."""

    title: ClassVar[str] = "Images and profiles"

    image_build: Literal["controller", "target"] = Field(
        default="controller",
        description="Where the hub and single-user images are built: once on the controller's Docker engine and "
        "shipped to each host that lacks them (`docker save | zstd` over the deploy's connection), or on each host "
        "(`target`). A controller without a Docker engine, or whose engine builds for another architecture than a "
        "host's (an Apple-silicon laptop's arm64 for an x86_64 server), makes that host build its own.",
    )
    base_image: ImageRef | None = Field(
        default=None,
        description="Image the hub and single-user images are built from. Empty: the host's own distribution "
        "and release (`debian:bookworm-slim`, `ubuntu:noble`, ...).",
    )
    base_image_fallback: Literal["debootstrap", "none"] = Field(
        default="debootstrap",
        description="What to do when `base_image` cannot be pulled: `debootstrap` builds it from the host's "
        "own distribution mirror and imports it (air-gapped sites); `none` stops with an error.",
    )
    debootstrap_mirror: HttpUrl | None = Field(
        default=None,
        description="Mirror for the debootstrap fallback. Empty: the first mirror in the host's apt sources.",
    )
    build_trust_host_ca: bool = Field(
        default=True,
        description="Image builds (and the images) trust the host's CA store, so a TLS-inspecting proxy "
        "does not break `pip install` inside them.",
    )
    build_extra_ca_certs: list[Path] = Field(
        default_factory=list,
        description="PEM files on the controller with more CA certificates for image builds and images.",
    )
    singleuser_image: ImageRef | None = Field(
        default=None,
        description="Image to pull for user servers (for example a CUDA notebook image). "
        "Empty: build one on the host from `base_image` with `singleuser_packages`.",
    )
    singleuser_packages: list[PinnedRequirement] = Field(
        default_factory=lambda: ["jupyterlab==4.6.6"],
        description="Pinned pip packages of the built single-user image, besides `jupyterhub` itself.",
    )
    jupyterlab_news: bool = Field(
        default=False,
        description="In the single-user images the deploy builds: JupyterLab's question \"Would you like to get "
        "notified about official Jupyter news?\" and its check for new JupyterLab releases. Off: people on a managed "
        "hub neither read Jupyter's news feed from their server nor update JupyterLab themselves. On: JupyterLab's "
        "own default (it asks each person).",
    )
    image_profiles: list[ImageProfile] = Field(
        default_factory=lambda: list(DEFAULT_PROFILES),
        description="The spawn form's choices, in order: each a `name`, `gpu` (its servers hold a GPU), extra "
        "pinned `packages` on the standard image or an `image` to pull, and its own `cpu_limit` and `mem_limit`. "
        "GPU profiles are built and offered only where there are GPUs, to users who may have one; a GPU user's "
        "default is the first GPU profile, everyone else's the first other one. The default's GPU image is "
        "several GB (PyTorch).",
    )
    hub_packages: list[PinnedRequirement] = Field(
        default_factory=list,
        description="Pinned pip packages of the hub image, replacing the deploy's own pins "
        "(`roles/images/templates/hub-requirements.txt`), for a site that holds or moves its own versions; must pin "
        "`jupyterhub`, which the single-user image then matches. Changing the version upgrades the hub in place.",
    )
    keep_previous_images: int = Field(
        default=1,
        ge=0,
        le=20,
        description="Earlier hub, proxy, single-user and profile images kept after a deploy that replaced them, "
        "for a rollback; older ones that no container uses are removed.",
    )

    @field_validator("image_profiles")
    @classmethod
    def _profiles_offer_something_to_everyone(cls, profiles: list[ImageProfile]) -> list[ImageProfile]:
        if not any(not profile.gpu for profile in profiles):
            raise ValueError("image_profiles needs at least one profile without gpu: true, for users (and hosts) "
                             "without a GPU")
        for field in ("name", "slug"):
            seen = [getattr(profile, field) for profile in profiles]
            twice = sorted({value for value in seen if seen.count(value) > 1})
            if twice:
                raise ValueError(f"image_profiles: more than one profile is named {', '.join(map(repr, twice))}")
        return profiles

    @field_validator("hub_packages")
    @classmethod
    def _hub_packages_pin_jupyterhub(cls, packages: list[str]) -> list[str]:
        if packages and sum(1 for p in packages if re.fullmatch(r"jupyterhub==\S+", p)) != 1:
            raise ValueError("hub_packages must pin jupyterhub exactly once, like 'jupyterhub==6.1.1' "
                             f"(given: {', '.join(packages)})")
        return packages

    @field_validator("build_extra_ca_certs")
    @classmethod
    def _pem_files_exist(cls, paths: list[Path]) -> list[Path]:
        for path in paths:
            if not path.is_file():
                raise ValueError(f"{str(path)!r} is not a file on the controller")
            content = path.read_bytes()
            if b"-----BEGIN CERTIFICATE-----" not in content:
                raise ValueError(f"{str(path)!r} holds no PEM certificate")
            if b"PRIVATE KEY-----" in content:
                raise ValueError(f"{str(path)!r} holds a private key: it would be copied into every image; "
                                 "give only the CA certificates")
        return paths
