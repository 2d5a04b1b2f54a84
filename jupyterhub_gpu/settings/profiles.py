"""Image profiles: the choices of the spawn form, each an image, whether it holds a GPU, and its limits."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from jupyterhub_gpu.settings.types import ImageRef, PinnedRequirement, _pattern

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ()._+-]{0,39}")


class ImageProfile(BaseModel):
    """One choice in the spawn form: an image, whether it holds a GPU, and what its servers may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_pattern(PROFILE_NAME, "1-40 letters, digits, spaces and '()._+-'"))] = \
        Field(description="What the spawn form shows.")
    gpu: bool = Field(default=False, description="Its servers hold a GPU; offered only to users who may have one, "
                      "on hosts with GPUs. Other profiles' servers see no GPU.")
    packages: list[PinnedRequirement] = Field(
        default_factory=list, description="Pinned pip packages added to the standard single-user image.")
    image: ImageRef | None = Field(default=None, description="An image to pull instead of building one.")
    gpu_kinds: list[Annotated[str, Field(min_length=1, max_length=120)]] = Field(
        default_factory=list, description="With `gpu: true`: the kinds of GPU its servers may hold, in order of "
        "preference, as the host's `nvidia-smi` names them: a model (`NVIDIA A100-SXM4-80GB`) or a MIG profile of one "
        "(`NVIDIA A100-SXM4-80GB MIG 1g.10gb`; a GPU in MIG mode is handed out only as its MIG devices). Empty: any "
        "kind; where a host has several, people choose on the spawn form.")
    cpu_limit: float | None = Field(default=None, gt=0, le=1024,
                                    description="CPUs its servers may use. Empty: `user_cpu_limit`.")
    mem_limit: str | None = Field(default=None, pattern=r"^[0-9]+[KMGT]?$",
                                  description="Memory its servers may use. Empty: `user_mem_limit`.")

    @model_validator(mode="after")
    def _kinds_only_for_gpus(self):
        if self.gpu_kinds and not self.gpu:
            raise ValueError(f"image profile {self.name!r}: gpu_kinds {self.gpu_kinds!r} is for a profile with gpu: "
                             "true; its servers hold no GPU")
        return self

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "profile"

    def __str__(self) -> str:
        extras = [f"{key}={value}" for key, value in self.model_dump(exclude_defaults=True).items() if key != "name"]
        return f"{self.name}" + (f" ({', '.join(extras)})" if extras else "")


# PyTorch from PyPI: its wheels bring the CUDA runtime libraries; the driver's libcuda comes from the host.
DEFAULT_PROFILES = [
    ImageProfile(name="Standard", cpu_limit=1, mem_limit="2G"),
    ImageProfile(name="GPU (CUDA)", gpu=True, packages=["torch==2.9.1"]),
]
