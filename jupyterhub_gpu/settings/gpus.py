"""The GPUs: which, how they are shared and by whom (the rules are the spawner's own), and NVIDIA's toolkit."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from gpudockerspawner.budgets import parse_period, zone
from gpudockerspawner.gpu_rules import RULE_KEYS, check_caps, parse_gpu_groups
from gpudockerspawner.pool import PoolError, parse_gpu_ids
from jupyterhub_gpu.settings.concern import Concern, trait
from jupyterhub_gpu.settings.types import AptUrl, GroupName, HttpUrl

# A group's rule: what the spawner reads, with its keys; the spawner parses and checks it (parse_gpu_groups,
# check_caps), for a hub configured by hand as for this deploy.
GroupRule = dict[str, int | float | str | list[str] | dict[str, str]]


class GpuSettings(Concern):
    """The GPUs: which ones, how they are shared, and NVIDIA's Container Toolkit."""

    title: ClassVar[str] = "GPUs"

    gpu_ids: Literal["auto", "none"] | list[str] = Field(
        default="auto",
        description="GPUs handed to user containers: `auto` (every GPU the host's nvidia-smi reports; none "
        "found means CPU-only), `none`, or device indexes or UUIDs (`GPU-...`, `MIG-...`) that must exist "
        "on the host; `\"0,1,2\"` and the legacy `\"012\"` are read too.",
    )
    gpus_per_user: int = Field(default=1, ge=1, le=64, description="GPUs each GPU container gets.",
                               json_schema_extra=trait("GPUDockerSpawner.gpus_per_user"))
    users_per_gpu: int = Field(
        default=1, ge=1, le=64, description="Containers that may share one GPU; 1 is exclusive.",
        json_schema_extra=trait("GPUDockerSpawner.users_per_gpu"),
    )
    gpu_on_exhausted: Literal["refuse", "cpu", "wait"] = Field(
        default="refuse",
        description="When no GPU is free for a user (every GPU is taken, or their groups hold all that "
        "`gpu_groups` allows): `refuse` the spawn with a message, start a CPU-only server (`cpu`), or `wait` in "
        "line for the next GPU released, first come first served, the spawn page showing one's place. The line is "
        "not kept over a hub restart: those waiting start again.",
        json_schema_extra=trait("GPUDockerSpawner.on_exhausted"),
    )
    gpu_wait_timeout: int = Field(
        default=1800, ge=30, le=7 * 86400,
        description="`wait`: seconds a spawn waits in line before it ends with a message.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_wait_timeout"),
    )
    gpu_groups: dict[GroupName, GroupRule] = Field(
        default_factory=dict,
        description="Hub groups whose members may have a GPU (everyone else sees only CPU profiles). Empty: "
        "everyone may. A list of names, or rules by group: `{students: {gpus_per_user: 1, max_gpus: 2}, research: "
        "{gpus_per_user: 2}}` (each member's GPU server gets `gpus_per_user`; the group's members hold at most "
        "`max_gpus` together); someone in several groups gets the most generous rule with room. Members are "
        "managed as hub groups (the admin page, the REST API), or come from `oauth`'s provider. A rule's keys: "
        + "; ".join(spec.describe(key) for key, spec in RULE_KEYS.items()),
        json_schema_extra=trait("GPUDockerSpawner.gpu_groups"),
    )

    gpu_hours: float | None = Field(
        default=None, gt=0, le=100_000,
        description="GPU-hours per `budget_period` for each person whom no group's rule covers (everyone where "
        "`gpu_groups` is empty); a MIG slice's hour counts its share of the GPU. Groups set their own in their "
        "rules (`gpu_hours` each, `gpu_hours_together` for the group). Empty: no budget. Shown on the spawn form, "
        "warned of on the home page and in the hub's log at 80 % and 15 minutes before the end, and enforced: a "
        "server still running at the end is stopped (after `budget_grace`), its files kept.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_hours"),
    )
    budget_period: str | dict[str, str] = Field(
        default="week",
        description="How GPU budgets renew where a group's rule does not say: `day`, `week` (from Monday), "
        "`month`, a repeating span like `6 hours`, or a term `{start: \"2026-09-01\", end: \"2026-12-20\"}` "
        "(the end day included; outside the term no GPU-hours are given), in `budget_timezone`.",
        json_schema_extra=trait("GPUDockerSpawner.budget_period"),
    )
    budget_timezone: str = Field(
        default="UTC", description="The time zone budget periods begin and end in (an IANA name, like "
        "`Europe/Berlin`).", json_schema_extra=trait("GPUDockerSpawner.budget_timezone"),
    )
    budget_grace: int = Field(
        default=0, ge=0, le=24 * 60,
        description="Minutes a running GPU server may go on past the end of its user's budget before it is "
        "stopped.", json_schema_extra=trait("GPUDockerSpawner.budget_grace"),
    )

    @field_validator("budget_period")
    @classmethod
    def _budget_period(cls, value):
        parse_period(value, where="")  # the error's key and value are said by the settings' own message
        return value

    @field_validator("budget_timezone")
    @classmethod
    def _budget_timezone(cls, value):
        zone(value)
        return value

    @field_validator("gpu_groups", mode="before")
    @classmethod
    def _group_rules(cls, groups):
        return parse_gpu_groups(groups)

    nvidia_repo_url: AptUrl = Field(
        default="https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)",
        description="NVIDIA Container Toolkit apt repository (a mirror for air-gapped hosts); "
        "`$(ARCH)` is apt's architecture.",
    )
    nvidia_key_url: HttpUrl = Field(
        default="https://nvidia.github.io/libnvidia-container/gpgkey",
        description="The key that signs `nvidia_repo_url`, dearmored into a keyring for its `signed-by`.",
    )
    nvidia_toolkit_version: str | None = Field(
        default=None,
        pattern=r"^[0-9][0-9A-Za-z.+~-]*$",
        description="Pin all four toolkit packages to this version, like `1.17.8-1`. Empty: the newest.",
    )
    nvidia_cdi: bool = Field(
        default=False,
        description="Also generate a CDI spec (`/etc/cdi/nvidia.yaml`) for runtimes that use CDI.",
    )

    @field_validator("gpu_ids", mode="before")
    @classmethod
    def _gpu_ids(cls, value):
        if value in ("auto", "all"):
            return "auto"
        if value == "none":
            return value
        try:
            return parse_gpu_ids(value)
        except PoolError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _gpu_group_caps_fit_a_server(self):
        check_caps(self.gpu_groups, self.gpus_per_user)
        return self
