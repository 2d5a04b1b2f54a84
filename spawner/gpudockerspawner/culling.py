"""Idle GPUs go back to the pool: jupyterhub-idle-culler as hub services, one of them for GPU servers only.

Two instances of the culler run, as its README suggests for different limits: ``idle-culler`` stops any
server idle (or old) past the hub-wide limits, ``gpu-idle-culler`` stops servers that hold a GPU past their
own, shorter ones. The second tells GPU servers apart by the assignment GPUDockerSpawner keeps in each
server's state (``state["gpus"]``), through the culler's ``cull_arbiter_hook`` (``gpu_culler_config.py``).
Stopping a server releases its GPU (the spawner's ``clear_state``), so the culler needs to know nothing of
the pool::

    c.JupyterHub.services += culling.hub_services(idle_timeout=3600, gpu_idle_timeout=1200, cull_every=60)
    c.JupyterHub.load_roles += culling.hub_roles()

Jupyter's own activity (a browser's traffic, a kernel's output) is what "idle" means to the culler. Where the
GPU service samples the GPUs (``figures.py``), two more signals can be had (``CullRules``):

- ``gpu_idle``: a server whose GPUs all stayed under the busy mark for ``gpu_idle_timeout`` is stopped even while
  a browser tab keeps it active;
- ``busy_keeps``: a server whose GPU was busy within ``gpu_idle_timeout`` is not stopped for want of Jupyter
  activity (an overnight training run with no browser), by either culler; only at its maximum age.

Before a culler stops a server it says why in the GPU usage record (``usage.py``), which keeps it with the hold
that ends; the hub's home page and the spawn form tell the person.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gpudockerspawner.figures import quiet_for, read_snapshot
from gpudockerspawner.usage import UsageLog
from gpudockerspawner.words import duration

NAME = "idle-culler"
GPU_NAME = "gpu-idle-culler"
CONFIG_FILE = Path(__file__).with_name("culler_config.py")
GPU_CONFIG_FILE = Path(__file__).with_name("gpu_culler_config.py")
# The environment by which the arbiters learn what the culler's own options cannot say: the GPU servers'
# maximum age (the culler's --max-age would stop every old server, GPU or not), the GPU signals, and where the
# figures and the usage record are.
GPU_MAX_AGE_ENV = "GPUDOCKERSPAWNER_CULL_GPU_MAX_AGE"
GPU_IDLE_ENV = "GPUDOCKERSPAWNER_CULL_GPU_IDLE"
BUSY_KEEPS_ENV = "GPUDOCKERSPAWNER_CULL_BUSY_KEEPS"
BUSY_AT_ENV = "GPUDOCKERSPAWNER_GPU_BUSY_AT"
BUSY_WINDOW_ENV = "GPUDOCKERSPAWNER_GPU_BUSY_WINDOW"
FIGURES_ENV = "GPUDOCKERSPAWNER_FIGURES"
USAGE_ENV = "GPUDOCKERSPAWNER_USAGE_DB"
# What starts every reason a culler gives (the home page tells people of these only).
CULLED = "culled: "
# The scopes jupyterhub-idle-culler's README lists; the GPU culler also reads servers' state, where the
# spawner keeps which GPUs a server holds.
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
GPU_SCOPES = SCOPES + ["admin:server_state"]


@dataclass(frozen=True)
class CullRules:
    """What the arbiters go by, besides the culler's idle limit (``inactive_limit``)."""

    gpu_max_age: int = 0
    gpu_idle: bool = False
    busy_keeps: bool = False
    busy_at: float = 5.0
    # Seconds within which a busy sample makes a GPU at work (gpu_idle_timeout).
    busy_window: int = 0
    figures_file: str = ""
    usage_db: str = ""

    def environment(self) -> dict[str, str]:
        return {GPU_MAX_AGE_ENV: str(self.gpu_max_age), GPU_IDLE_ENV: "1" if self.gpu_idle else "",
                BUSY_KEEPS_ENV: "1" if self.busy_keeps else "", BUSY_AT_ENV: f"{self.busy_at:g}",
                BUSY_WINDOW_ENV: str(self.busy_window),
                FIGURES_ENV: self.figures_file, USAGE_ENV: self.usage_db}

    @classmethod
    def from_environment(cls) -> CullRules:
        env = os.environ
        return cls(int(env.get(GPU_MAX_AGE_ENV) or 0), bool(env.get(GPU_IDLE_ENV)), bool(env.get(BUSY_KEEPS_ENV)),
                   float(env.get(BUSY_AT_ENV) or 5), int(env.get(BUSY_WINDOW_ENV) or 0), env.get(FIGURES_ENV, ""),
                   env.get(USAGE_ENV, ""))

    def at_work(self, quiet: float | None) -> bool:
        """Whether GPUs quiet for ``quiet`` seconds keep their server (``busy_keeps``)."""
        return self.busy_keeps and quiet is not None and quiet < self.busy_window


def _command(timeout: int, max_age: int, cull_every: int, config: Path) -> list[str]:
    return [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}", f"--max-age={max_age}",
            f"--cull-every={cull_every}", f"--config={config}"]


def hub_services(idle_timeout: int = 3600, max_age: int = 0, gpu_idle_timeout: int = 0, gpu_max_age: int = 0,
                 cull_every: int = 60, rules: CullRules | None = None) -> list[dict]:
    """Entries for ``JupyterHub.services``: a culler for every server where ``idle_timeout`` or ``max_age``
    is set, one for GPU servers where ``gpu_idle_timeout`` or ``gpu_max_age`` is (0 means no limit)."""
    rules = rules or CullRules()
    environment = {**rules.environment(), GPU_MAX_AGE_ENV: str(gpu_max_age), BUSY_WINDOW_ENV: str(gpu_idle_timeout)}
    services = []
    if idle_timeout or max_age:
        # Without an idle limit the culler would stop every server at once: make it one nobody reaches.
        services.append({"name": NAME, "command": _command(idle_timeout or 10**9, max_age, cull_every, CONFIG_FILE),
                         "environment": environment})
    if gpu_idle_timeout or gpu_max_age:
        services.append({
            "name": GPU_NAME,
            "command": _command(gpu_idle_timeout or 10**9, 0, cull_every, GPU_CONFIG_FILE),
            "environment": environment,
        })
    return services


def hub_roles(services: list[dict]) -> list[dict]:
    """The least scopes each of ``services`` needs: both read servers' state where a busy GPU keeps a server."""
    def scopes(service: dict) -> list[str]:
        reads_state = service["name"] == GPU_NAME or service.get("environment", {}).get(BUSY_KEEPS_ENV)
        return GPU_SCOPES if reads_state else SCOPES

    return [{"name": f"{service['name']}-role", "scopes": scopes(service), "services": [service["name"]]}
            for service in services]


def _parse_date(value: str) -> datetime:
    # The hub's ISO 8601 with a trailing Z (Python 3.10 does not read the Z itself).
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def owner_of(server: dict) -> str | None:
    """``user/server`` from a server's model (its URL: /user/<name>/[<server>/])."""
    path = urlsplit(server.get("url") or "").path
    _, found, rest = path.partition("/user/")
    if not found:
        return None
    user, _, name = rest.strip("/").partition("/")
    return f"{unquote(user)}/{unquote(name.strip('/'))}"


def _cull(rules: CullRules, server: dict, reason: str) -> bool:
    """Cull, the reason kept with the server's hold of GPUs (a server with none has no hold to keep it)."""
    owner = owner_of(server)
    if rules.usage_db and owner and Path(rules.usage_db).exists():
        UsageLog(rules.usage_db).note_reason(owner, CULLED + reason)
    return True


def _quiet(rules: CullRules, server: dict, started: datetime) -> float | None:
    """Seconds the server's GPUs have been quiet, from the GPU service's figures (none if they are stale)."""
    state = server.get("state") or {}
    if not state.get("gpus") or not rules.figures_file:
        return None
    snapshot = read_snapshot(rules.figures_file)
    if snapshot is None:
        return None
    return quiet_for(snapshot, state["gpus"], state.get("node", ""), started.timestamp())


def gpu_arbiter(*, inactive, inactive_limit, server, **kwargs) -> bool:
    """The GPU culler's ``cull_arbiter_hook``: cull a server that holds a GPU past
    ``$GPUDOCKERSPAWNER_CULL_GPU_MAX_AGE`` seconds, or whose GPUs stayed quiet past the limit (``gpu_idle``), or that
    has been idle past the limit unless its GPU is busy (``busy_keeps``); leave every other server alone."""
    if not (server.get("state") or {}).get("gpus"):
        return False
    rules = CullRules.from_environment()
    started = _parse_date(server["started"]) if server.get("started") else datetime.now(timezone.utc)
    age = (datetime.now(timezone.utc) - started).total_seconds()
    if rules.gpu_max_age and age >= rules.gpu_max_age:
        return _cull(rules, server, f"it reached the maximum age of a GPU server ({duration(rules.gpu_max_age)})")
    quiet = _quiet(rules, server, started) if rules.gpu_idle or rules.busy_keeps else None
    if rules.gpu_idle and quiet is not None and quiet >= inactive_limit:
        return _cull(rules, server, f"its GPU was idle (under {rules.busy_at:g}% utilisation) for {duration(quiet)}")
    if inactive is not None and inactive.total_seconds() >= inactive_limit:
        if rules.at_work(quiet):
            return False  # its GPU is at work: a run with no browser attached goes on
        return _cull(rules, server, f"it had no browser or kernel activity for {duration(inactive.total_seconds())}")
    return False


def arbiter(*, inactive, inactive_limit, server, **kwargs) -> bool:
    """The hub-wide culler's ``cull_arbiter_hook``: the culler's own rule (idle past the limit), except for a
    server whose GPU is at work where ``busy_keeps`` says so. (Its --max-age applies after this, to every server.)"""
    if inactive is None or inactive.total_seconds() < inactive_limit:
        return False
    rules = CullRules.from_environment()
    if rules.busy_keeps and (server.get("state") or {}).get("gpus"):
        started = _parse_date(server["started"]) if server.get("started") else datetime.now(timezone.utc)
        if rules.at_work(_quiet(rules, server, started)):
            return False
    return _cull(rules, server, f"it had no browser or kernel activity for {duration(inactive.total_seconds())}")
