"""Idle GPUs go back to the pool: jupyterhub-idle-culler as hub services, one of them for GPU servers only.

Two instances of the culler run, as its README suggests for different limits: ``idle-culler`` stops any
server idle (or old) past the hub-wide limits, ``gpu-idle-culler`` stops servers that hold a GPU past their
own, shorter ones. The second tells GPU servers apart by the assignment GPUDockerSpawner keeps in each
server's state (``state["gpus"]``), through the culler's ``cull_arbiter_hook`` (``gpu_culler_config.py``).
Stopping a server releases its GPU (the spawner's ``clear_state``), so the culler needs to know nothing of
the pool::

    c.JupyterHub.services += culling.hub_services(idle_timeout=3600, gpu_idle_timeout=1200, cull_every=60)
    c.JupyterHub.load_roles += culling.hub_roles()
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

NAME = "idle-culler"
GPU_NAME = "gpu-idle-culler"
GPU_CONFIG_FILE = Path(__file__).with_name("gpu_culler_config.py")
# The environment variable by which the GPU culler's arbiter learns the GPU servers' maximum age: the
# culler's own --max-age would stop every old server, GPU or not.
GPU_MAX_AGE_ENV = "GPUDOCKERSPAWNER_CULL_GPU_MAX_AGE"
# The scopes jupyterhub-idle-culler's README lists; the GPU culler also reads servers' state, where the
# spawner keeps which GPUs a server holds.
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
GPU_SCOPES = SCOPES + ["admin:server_state"]


def _command(timeout: int, max_age: int, cull_every: int) -> list[str]:
    return [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}", f"--max-age={max_age}",
            f"--cull-every={cull_every}"]


def hub_services(idle_timeout: int = 3600, max_age: int = 0, gpu_idle_timeout: int = 0, gpu_max_age: int = 0,
                 cull_every: int = 60) -> list[dict]:
    """Entries for ``JupyterHub.services``: a culler for every server where ``idle_timeout`` or ``max_age``
    is set, one for GPU servers where ``gpu_idle_timeout`` or ``gpu_max_age`` is (0 means no limit)."""
    services = []
    if idle_timeout or max_age:
        # Without an idle limit the culler would stop every server at once: make it one nobody reaches.
        services.append({"name": NAME, "command": _command(idle_timeout or 10**9, max_age, cull_every)})
    if gpu_idle_timeout or gpu_max_age:
        services.append({
            "name": GPU_NAME,
            "command": _command(gpu_idle_timeout or 10**9, 0, cull_every) + [f"--config={GPU_CONFIG_FILE}"],
            "environment": {GPU_MAX_AGE_ENV: str(gpu_max_age)},
        })
    return services


def hub_roles(services: list[dict]) -> list[dict]:
    """The least scopes each of ``services`` needs."""
    return [{"name": f"{service['name']}-role", "scopes": GPU_SCOPES if service["name"] == GPU_NAME else SCOPES,
             "services": [service["name"]]} for service in services]


def _parse_date(value: str) -> datetime:
    # The hub's ISO 8601 with a trailing Z (Python 3.10 does not read the Z itself).
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def gpu_arbiter(*, inactive, inactive_limit, server, **kwargs) -> bool:
    """The GPU culler's ``cull_arbiter_hook``: cull a server that holds a GPU and has been idle past the
    limit, or has run past ``$GPUDOCKERSPAWNER_CULL_GPU_MAX_AGE`` seconds; leave every other server alone."""
    if not (server.get("state") or {}).get("gpus"):
        return False
    if inactive.total_seconds() >= inactive_limit:
        return True
    max_age = int(os.environ.get(GPU_MAX_AGE_ENV) or 0)
    started = server.get("started")
    if max_age and started:
        return (datetime.now(timezone.utc) - _parse_date(started)).total_seconds() >= max_age
    return False
