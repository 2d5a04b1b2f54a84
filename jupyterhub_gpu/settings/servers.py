"""What each person's server may use, how servers start, and when idle ones are stopped."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from jupyterhub_gpu.settings.concern import Concern, trait


class LimitSettings(Concern):
    """What each user's server may use."""

    title: ClassVar[str] = "Limits"

    user_mem_limit: str | None = Field(
        default=None,
        pattern=r"^[0-9]+[KMGT]?$",
        description="Memory each user container may use, like `8G`, where its image profile sets none. Empty: half "
        "the host's memory.",
    )
    user_cpu_limit: float | None = Field(
        default=None,
        gt=0,
        le=1024,
        description="CPUs each user container may use, like `2` or `0.5`, where its image profile sets none. Empty: "
        "half the host's CPUs, at least one.",
    )
    user_pids_limit: int = Field(
        default=4096,
        ge=64,
        le=1_000_000,
        description="Processes and threads each user container may run (a fork bomb stops there).",
    )
    user_cpu_shares: int = Field(
        default=256,
        ge=2,
        le=262_144,
        description="CPU weight of each user container against the hub's and the proxy's (Docker's default, "
        "1024): when the host is busy, the hub still answers. 1024: equal weight.",
    )
    gpu_shm_size: str = Field(
        default="4G",
        pattern=r"^[0-9]+[KMGT]?$",
        description="`/dev/shm` of containers that hold GPUs: PyTorch's data loaders share batches through it, and "
        "Docker's 64 MB breaks them.",
        json_schema_extra=trait("GPUDockerSpawner.gpu_shm_size"),
    )


class SpawnSettings(Concern):
    """How servers start, and when they stop."""

    title: ClassVar[str] = "Starting servers"

    spawns_at_once: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="User servers that start at the same time (from container to answering server); the others "
        "wait in line and their spawn page says how many are ahead. Empty: twice the host's CPUs; 0: no line.",
    )
    concurrent_spawn_limit: int = Field(
        default=200,
        ge=0,
        le=10_000,
        description="Spawns pending at once beyond which the hub answers 'too many users, try again' (JupyterHub's "
        "`concurrent_spawn_limit`; 0: no limit). Below it, spawns wait in line (`spawns_at_once`).",
        json_schema_extra=trait("JupyterHub.concurrent_spawn_limit"),
    )
    spawn_start_timeout: int = Field(
        default=900,
        ge=30,
        le=7200,
        description="Seconds a server may take to start, its wait in line included, before the hub gives up on it "
        "(JupyterHub's `start_timeout`).",
        json_schema_extra=trait("GPUDockerSpawner.start_timeout"),
    )
    spawn_http_timeout: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Seconds a started container's server may take to answer (JupyterHub's `http_timeout`).",
        json_schema_extra=trait("GPUDockerSpawner.http_timeout"),
    )
    shutdown_on_logout: bool = Field(
        default=False,
        description="Stop a user's servers when they log out (their files stay; a GPU goes back to the pool). "
        "Off: servers run on until the idle culler stops them.",
        json_schema_extra=trait("JupyterHub.shutdown_on_logout"),
    )


class CullingSettings(Concern):
    """Idle servers stopped, and how activity is read."""

    title: ClassVar[str] = "Idle servers"

    idle_timeout: int = Field(
        default=3600,
        ge=0,
        le=30 * 86400,
        description="Seconds a user server may sit idle (no browser, no kernel output) before the idle culler stops "
        "it; its files stay. 0: idle servers run on.",
    )
    max_age: int = Field(
        default=0,
        ge=0,
        le=365 * 86400,
        description="Seconds after which the idle culler stops any user server, busy or not. 0: no limit.",
    )
    gpu_idle_timeout: int = Field(
        default=1800,
        ge=0,
        le=30 * 86400,
        description="Seconds a server that holds a GPU may sit idle before it is stopped and its GPU goes back to "
        "the pool (a culler of its own, for GPU servers only). 0: only `idle_timeout` applies.",
    )
    gpu_max_age: int = Field(
        default=0,
        ge=0,
        le=365 * 86400,
        description="Seconds after which a server that holds a GPU is stopped, busy or not, so that nobody keeps a "
        "GPU for good. 0: only `max_age` applies.",
    )
    gpu_idle_utilization: int = Field(
        default=0,
        ge=0,
        le=100,
        description="GPU utilisation (percent) under which a GPU counts as idle. Above 0, GPU idleness is a signal of "
        "its own: a server whose GPUs all stayed under it for `gpu_idle_timeout` is stopped even while a browser tab "
        "keeps it active. 0: only Jupyter's activity (browser, kernels) counts.",
    )
    gpu_busy_is_activity: bool = Field(
        default=False,
        description="A server whose GPU was busy (at `gpu_idle_utilization` or more, 5 % where that is 0) within "
        "`gpu_idle_timeout` counts as active: a training run left overnight with no browser goes on, until "
        "`gpu_max_age` or `max_age`.",
    )
    gpu_sample_interval: int = Field(
        default=5,
        ge=1,
        le=300,
        description="Seconds between samples of each GPU's utilisation and memory (by a small container given the "
        "driver's utilities on each GPU host), for the GPU page, the Prometheus gauges and the GPU idleness signals.",
    )
    cull_every: int = Field(
        default=60, ge=5, le=3600, description="Seconds between the idle cullers' looks at the servers."
    )
    cull_warnings: list[Annotated[float, Field(gt=0, le=1440)]] = Field(
        default_factory=lambda: [15, 5],
        max_length=5,
        description="Minutes before a server is stopped (for GPU idleness, at its maximum age, or at the end of its "
        "GPU budget) at which its JupyterLab warns its user, each warning once, in JupyterLab's notifications. "
        "Empty: no warnings (the GPU panel still says when).",
    )
    activity_interval: int = Field(
        default=300,
        ge=5,
        le=3600,
        description="Seconds between the hub's reads of user activity (from the proxy, and from each server, "
        "kernels included): an idle limit is only this precise.",
    )

    @model_validator(mode="after")
    def _gpu_signals_have_a_limit(self):
        signals = [name for name in ("gpu_idle_utilization", "gpu_busy_is_activity") if getattr(self, name)]
        if signals and not self.gpu_idle_timeout:
            raise ValueError(f"{' and '.join(f'{name} = {getattr(self, name)!r}' for name in signals)}: GPU "
                             "idleness is judged over gpu_idle_timeout, which is 0; set gpu_idle_timeout "
                             "(seconds, for example 1800)")
        return self
