"""What the deploy tells the hub: ``/etc/jupyterhub/hub.json``, declared once, typed, for both sides.

The deploy (``roles.services.hub_settings``) builds a ``HubContract`` from its validated settings and writes it
with ``dump``; the hub's configuration reads it back with ``read``, which refuses a key that is missing or that
nobody declared (a deploy and a hub image of different versions say so, instead of a setting silently lost).
Data only: nothing here becomes code. Settings that map one to one onto a trait travel in ``traits``
(``{"Class.trait": value}``, from each setting's own declaration); what the hub needs beyond them is below.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuCheck:
    service: str
    user: str
    scopes: list[str]


@dataclass(frozen=True)
class Hub:
    api_port: int
    view_port: int  # the GPU service's port for user servers (their JupyterLab's GPU view), below 1024 too
    sharing: bool  # people may share their running servers (JupyterHub's shares)
    public_url: str
    subdomain_host: str | None  # each user's server on a subdomain of its own; None: all on the hub's origin
    hsts_max_age: int
    admin_users: list[str]
    ops_token: bool
    ops_token_scopes: list[str]
    metrics_token: bool
    gpu_check: GpuCheck | None  # None: the host hands out no GPU
    activity_interval: int


@dataclass(frozen=True)
class Culler:
    idle_timeout: int
    max_age: int
    gpu_idle_timeout: int
    gpu_max_age: int
    cull_every: int
    gpu_idle: bool
    busy_keeps: bool
    busy_at: float
    warnings: list[float]  # minutes before a stop at which JupyterLab warns


@dataclass(frozen=True)
class GpuFigures:
    """Where the GPU service reads the GPUs' figures, and the usage record the spawner keeps."""

    samplers: list[str]
    on_nodes: bool
    interval: int
    busy_at: float
    figures_file: str
    usage_db: str


@dataclass(frozen=True)
class Ldap:
    ca_file: str | None
    looks_up_dn: bool


@dataclass(frozen=True)
class OAuth:
    provider: str
    callback_url: str | None
    authorize_url: str | None
    token_url: str | None
    userdata_url: str | None
    scopes: list[str]
    username_claim: str | None
    groups_claim: str


@dataclass(frozen=True)
class Authenticator:
    kind: str
    allowed_users: list[str]
    reserved_names: list[str]
    allowed_groups: list[str]
    allow_all: bool
    ldap: Ldap
    oauth: OAuth


@dataclass(frozen=True)
class Profile:
    name: str
    image: str
    gpu: bool
    gpu_kinds: list[str]  # the kinds its servers may hold, in order of preference (none: any)
    cpu_limit: float | None
    mem_limit: str | None


@dataclass(frozen=True)
class Swarm:
    home_volume_driver: str | None
    home_volume_driver_options: dict[str, str]


@dataclass(frozen=True)
class Spawner:
    image: str  # a server started without a pick runs the standard profile
    profiles: list[Profile]
    own_user_images: list[str]  # images made elsewhere: they run as their own USER
    home_volume_prefix: str
    shared_volume_prefix: str  # each shared folder's volume is this and its name
    gpu_ids: list[str]
    gpu_units: dict[str, dict]  # what each of gpu_ids is: {"kind", "label", "share"}
    devices_filtered: bool
    pool_label: str
    mem_limit: str | None
    cpu_limit: float | None
    pids_limit: int
    cpu_shares: int
    spawns_at_once: int
    hsts_max_age: int
    sudo_groups: list[str]
    activity_interval: int
    swarm: Swarm | None  # a cluster's hub starts servers as Swarm services on the GPU nodes


@dataclass(frozen=True)
class HubContract:
    traits: dict[str, typing.Any]
    hub: Hub
    culler: Culler
    gpu_figures: GpuFigures
    authenticator: Authenticator
    spawner: Spawner


class ContractError(ValueError):
    pass


def _build(kind, value, where: str):
    """``value`` (parsed JSON) as ``kind``: dataclasses field by field, lists and optionals of them within."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ContractError(f"{where}: expected an object, found {value!r}")
        hints = typing.get_type_hints(kind)
        names = [field.name for field in dataclasses.fields(kind)]
        missing, unknown = sorted(set(names) - set(value)), sorted(set(value) - set(names))
        if missing or unknown:
            raise ContractError(f"{where}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown
                                                                         else []))
                                + " (the deploy and the hub's image are of different versions: deploy again)")
        return kind(**{name: _build(hints[name], value[name], f"{where}.{name}") for name in names})
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(arg for arg in args if arg is not type(None))
        return None if value is None else _build(inner, value, where)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return [_build(args[0], item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def load(document: dict) -> HubContract:
    return _build(HubContract, document, "hub.json")


def read(path: str | Path) -> HubContract:
    return load(json.loads(Path(path).read_text()))


def dump(contract: HubContract) -> dict:
    return dataclasses.asdict(contract)
