"""GPUDockerSpawner: DockerSpawner with GPUs handed out from a pool through Docker device requests."""

from __future__ import annotations

import asyncio
import html

from dockerspawner import DockerSpawner
from jupyterhub.utils import fmt_ip_url, wait_for_http_server
from tornado.web import HTTPError
from traitlets import Bool, Dict, Enum, Int, List, TraitError, Unicode, Union, default, validate

from gpudockerspawner import metrics
from gpudockerspawner.gpus import GPUPolicy, HostPool, refusal
from gpudockerspawner.line import StartLine
from gpudockerspawner.pool import GPUPool, PoolError, parse_gpu_ids, rebuild

OWNER_LABEL = "gpudockerspawner.owner"
GPUS_LABEL = "gpudockerspawner.gpus"
POOL_LABEL = "gpudockerspawner.pool"


class GPUDockerSpawner(DockerSpawner):
    """Give each user container ``gpus_per_user`` GPUs from ``gpu_ids``, or none."""

    gpu_ids = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        config=True,
        help="""GPU device indexes or UUIDs (GPU-..., MIG-...) to hand out.

        A list, a comma-separated string ("0,1,2"), or the legacy one-character-per-GPU
        string ("012"). Empty (the default): every container is CPU-only. "all"/"auto" must
        be resolved to real ids by whoever writes the configuration (the deploy does).
        Duplicates and malformed ids are refused when the hub starts.
        """,
    )
    gpus_per_user = Int(1, config=True, help="How many GPUs each GPU container gets (default 1).")
    users_per_gpu = Int(
        1,
        config=True,
        help="How many user containers may share one GPU: 1 (the default) is exclusive; "
        "with more, the least-loaded GPU is chosen first, ties in pool order.",
    )
    on_exhausted = Enum(
        ["refuse", "cpu"],
        default_value="refuse",
        config=True,
        help="When no GPU is free: 'refuse' the spawn with a message to the user (the default), "
        "or start a CPU-only container ('cpu').",
    )
    gpu_images = List(
        Unicode(),
        config=True,
        help="Images (as users pick them from allowed_images, or the resolved names) whose containers get "
        "GPUs. Empty (the default): every image does. Where set, a user who may have a GPU and picks no image "
        "gets the first allowed one of them, and the spawn form's image choice is the hardware choice.",
    )
    limits_by_image = Dict(
        value_trait=Dict(),
        config=True,
        help="""Limits of servers by the image picked (its name in allowed_images), applied at each start:
        ``{"Standard": {"cpu_limit": 1, "mem_limit": "2G"}}``. Images not listed keep ``cpu_limit`` and
        ``mem_limit``. (Those two are evaluated once per spawner, before anyone picks an image.)""",
    )
    gpu_groups = List(
        Unicode(),
        config=True,
        help="JupyterHub groups whose members may have GPUs. Empty (the default): every user may.",
    )
    offer_cpu_only = Bool(
        True,
        config=True,
        help="Let users who may have a GPU choose a CPU-only server in the spawn form.",
    )
    devices_filtered = Bool(
        True,
        config=True,
        help="""Whether the container runtime shows a container only its own GPUs (NVIDIA's runtime on Linux
        does; WSL2 does not). With index ids, CUDA_VISIBLE_DEVICES is then 0..n-1 inside the container;
        otherwise, and always for UUIDs, it names the assigned GPUs themselves.""",
    )
    gpu_shm_size = Unicode(
        "",
        config=True,
        help="""Size of /dev/shm for containers that hold GPUs, like "4G" (PyTorch's data loaders share batches
        through it; Docker's default of 64 MB breaks them). Empty (the default): Docker's.""",
    )
    pool_label = Unicode(
        "default",
        config=True,
        help="Labels this hub's containers, so that hubs sharing one Docker engine keep separate pools.",
    )

    own_user_images = List(
        Unicode(),
        config=True,
        help="""Images (resolved names) whose servers run as the user the image itself names (``USER``), where
        the others start as root for an entry point that drops to an unprivileged user (``extra_create_kwargs``).
        For images made elsewhere, whose entry point may not drop anything: a server of such an image whose
        ``USER`` is root, or unset, is refused with a message instead of making its user root.""",
    )

    spawns_at_once = Int(
        0,
        min=0,
        config=True,
        help="""Servers of this hub that start at the same time, from creating the container until the server
        answers; the others wait in line, first come first served, and their spawn page says how many are
        ahead. 0 (the default): no line. The wait counts against ``start_timeout``.""",
    )

    assigned_gpus = List(Unicode(), help="GPUs the current container holds; persisted in the spawner state.")
    # Whether the server being started is to hold GPUs (where the source names them only once it is placed,
    # assigned_gpus is empty until then).
    gpu_wanted = False

    # One pool per hub process and configuration, rebuilt at hub start from running containers' labels.
    _pools: dict[tuple, GPUPool] = {}
    # One line per hub process and pool.
    _lines: dict[tuple, StartLine] = {}
    _turn: asyncio.Future | None = None
    # cpu_limit and mem_limit as configured, before any pick's limits replaced them.
    _configured_limits: dict | None = None

    @validate("gpu_ids")
    def _valid_gpu_ids(self, proposal):
        try:
            return parse_gpu_ids(proposal.value)
        except PoolError as error:
            raise TraitError(f"GPUDockerSpawner.gpu_ids: {error}") from None

    @validate("gpus_per_user", "users_per_gpu")
    def _at_least_one(self, proposal):
        if proposal.value < 1:
            raise TraitError(f"GPUDockerSpawner.{proposal.trait.name} must be at least 1, not {proposal.value}")
        return proposal.value

    # How the GPU settings reach Docker, through DockerSpawner's documented hooks: `extra_host_config` gets
    # the device requests and `extra_create_kwargs` the labels, each as a callable that DockerSpawner calls
    # with the spawner when it creates the container (supported since DockerSpawner 13). An admin may set
    # either hook too (a dict or a callable); the validator below wraps whatever they set in a callable that
    # evaluates theirs and merges ours into it (dicts merged, lists extended), so both apply. The wrapper is
    # marked (`_gpu_merged`) so that it is not wrapped again when traitlets validates it a second time.
    @default("extra_host_config")
    def _default_extra_host_config(self):
        return _with_gpu_host_config({})

    @default("extra_create_kwargs")
    def _default_extra_create_kwargs(self):
        return _with_gpu_labels({})

    @validate("extra_host_config", "extra_create_kwargs")
    def _keep_gpu_hooks(self, proposal):
        value = proposal.value
        if getattr(value, "_gpu_merged", False):
            return value
        return {"extra_host_config": _with_gpu_host_config, "extra_create_kwargs": _with_gpu_labels}[
            proposal.trait.name
        ](value)

    @property
    def pool(self) -> GPUPool:
        key = (self.pool_label, tuple(self.gpu_ids), self.users_per_gpu)
        if key not in self._pools:
            self._pools[key] = self._rebuild_pool()
            metrics.register(lambda: [(label, pool) for (label, *_), pool in GPUDockerSpawner._pools.items()])
        return self._pools[key]

    def _rebuild_pool(self) -> GPUPool:
        running = {}
        for container in self.client.containers(filters={"label": [f"{POOL_LABEL}={self.pool_label}", OWNER_LABEL]}):
            labels = container["Labels"]
            ids = [gpu for gpu in labels.get(GPUS_LABEL, "").split(",") if gpu]
            if ids:
                running[labels[OWNER_LABEL]] = ids
        pool, problems = rebuild(self.gpu_ids, self.users_per_gpu, running)
        for problem in problems:
            self.log.error("GPU pool %s: %s", self.pool_label, problem)
        self.log.info("GPU pool %s rebuilt from %d running containers: %s", self.pool_label, len(running), pool.table())
        return pool

    @property
    def owner(self) -> str:
        return f"{self.user.name}/{self.name}"

    @property
    def gpu_source(self):
        """Where this spawner's GPUs come from: the host's pool (a subclass may have them come from elsewhere)."""
        return HostPool(self.gpu_ids, self.users_per_gpu, lambda: self.pool)

    @property
    def gpu_policy(self) -> GPUPolicy:
        return GPUPolicy(tuple(self.gpu_groups), self.on_exhausted)

    def load_state(self, state):
        super().load_state(state)
        self.assigned_gpus = self.gpu_source.restored(self.owner, list(state.get("gpus", [])), self.log)

    def get_state(self):
        state = super().get_state()
        if self.assigned_gpus:
            state["gpus"] = list(self.assigned_gpus)
        return state

    def clear_state(self):
        super().clear_state()
        self._release()

    def get_env(self):
        env = super().get_env()
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(self.assigned_gpus) or "void"
        if self.assigned_gpus:
            env["CUDA_VISIBLE_DEVICES"] = self._cuda_visible_devices()
        return env

    def _cuda_visible_devices(self) -> str:
        if self.devices_filtered and all(gpu.isdigit() for gpu in self.assigned_gpus):
            return ",".join(str(index) for index in range(len(self.assigned_gpus)))
        return ",".join(self.assigned_gpus)

    def may_use_gpu(self) -> bool:
        return self.gpu_policy.may_have((group.name for group in self.user.groups), self.gpu_source)

    @default("options_form")
    def _gpu_options_form(self):
        def form(spawner):
            images = _image_choice(spawner)
            # Where images hold GPUs or not (profiles), choosing the image is choosing the hardware.
            if not (spawner.may_use_gpu() and spawner.offer_cpu_only) or spawner.gpu_images:
                return images
            count = spawner.gpus_per_user
            choice = (
                '<label for="gpu">Hardware:</label>'
                '<select class="form-control" name="gpu">'
                f'<option value="gpu" selected>{count} GPU{"s" if count > 1 else ""}</option>'
                '<option value="cpu">CPU only</option></select>'
            )
            return images + choice

        return form

    @default("options_from_form")
    def _gpu_options_from_form(self):
        image_options = DockerSpawner._default_options_from_form(self)

        def options_from_form(formdata):
            options = image_options(formdata)
            if "gpu" in formdata:
                options["gpu"] = formdata["gpu"][0]
            return options

        return options_from_form

    async def start(self):
        picked = self.user_options.get("image") or self._default_pick()
        if picked:
            # Kept with the server, where admins see it.
            self.user_options = {**self.user_options, "image": picked}
        self._apply_limits(picked)
        image = await self.check_allowed(picked) if picked else self.image
        if image in self.own_user_images:
            await self._refuse_if_root(image)
        # No await between the pool check and the reservation: atomic in the hub's event loop.
        self._reserve(wants_gpu=self._wants_gpu(picked, image))
        try:
            await self._remove_container_with_other_gpus()
            if not self.spawns_at_once:
                return await super().start()
            async with self._line().turn(on_wait=self._waiting_in_line):
                self._turn = None
                ip, port = await super().start()
                # The server's boot is the costly part: it keeps its place in line until it answers.
                await wait_for_http_server(f"{self.server.proto}://{fmt_ip_url(ip)}:{port}{self.server.base_url}",
                                           timeout=self.http_timeout)
                return ip, port
        except BaseException:
            self._release()
            raise
        finally:
            self._turn = None

    async def _refuse_if_root(self, image: str) -> None:
        user = ((await self.docker("inspect_image", image)).get("Config") or {}).get("User") or ""
        if user.split(":")[0] in ("", "root", "0"):
            self.log.warning("%s: image %s runs as %s: refused", self.owner, image, user or "root (no USER)")
            raise refusal(f"The image {image} runs its server as root, which would make you root in your server: "
                          "an admin must give it a USER that is not root (the Jupyter Docker Stacks images run as "
                          "jovyan), or build it from packages on the standard image.")

    def _line(self) -> StartLine:
        key = (self.pool_label, self.spawns_at_once)
        if key not in self._lines:
            self._lines[key] = StartLine(self.spawns_at_once)
        return self._lines[key]

    def _waiting_in_line(self, turn: asyncio.Future) -> None:
        self._turn = turn

    async def progress(self):
        """While the server waits in line, its spawn page says how many start before it."""
        said = None
        while self._turn is not None and not self._turn.done():
            ahead = self._line().ahead_of(self._turn) + self._line().starting
            if ahead != said:
                said = ahead
                yield {"progress": 5, "message": f"Waiting in line: {ahead} server{'s' if ahead != 1 else ''} "
                                                 "of other users start before yours"}
            await asyncio.sleep(1)
        async for event in super().progress():
            yield event

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            self._release()

    async def poll(self):
        status = await super().poll()
        if status is not None:
            self._release()
        return status

    async def get_url(self):
        """Where the server is now, asked of Docker, not remembered: when the engine or the host restarts,
        a container comes back with its server and its GPUs but may get another address, and the hub asks
        this of every server that survived its own restart."""
        ip, port = await self.get_ip_and_port()
        return f"{self.server.proto}://{fmt_ip_url(ip)}:{port}{self.server.base_url}"

    def _apply_limits(self, picked: str | None) -> None:
        """The picked image's limits, or the configured ones for an image ``limits_by_image`` does not list
        (a spawner outlives its starts, and an earlier pick's limits must not stay)."""
        if self._configured_limits is None:
            self._configured_limits = {"cpu_limit": self.cpu_limit, "mem_limit": self.mem_limit}
        for name, value in {**self._configured_limits, **self.limits_by_image.get(picked or "", {})}.items():
            setattr(self, name, value)

    def _default_pick(self) -> str | None:
        """What a user who picked no image gets, where some allowed images hold GPUs and others not: the first
        GPU one for a user who may have a GPU, the first other one for everyone else. Otherwise ``image``."""
        if not self.gpu_images:
            return None
        allowed = self._get_allowed_images()
        if not isinstance(allowed, dict):
            return None
        wants = self.may_use_gpu()
        return next((name for name, image in allowed.items()
                     if bool({name, image} & set(self.gpu_images)) == wants), None)

    def _wants_gpu(self, picked: str | None, image: str) -> bool:
        if not self.may_use_gpu():
            return False
        if self.gpu_images and not {picked, image} & set(self.gpu_images):
            return False
        if self.user_options.get("gpu") == "cpu":
            if not self.offer_cpu_only:
                raise HTTPError(400, "CPU-only servers are not offered here")
            return False
        return True

    def _reserve(self, wants_gpu: bool) -> None:
        """The server's GPUs, where it is to have some: reserved now from the host's pool, or (``gpu_wanted``)
        left for the source to name when it places the server; or, with none free, the policy's answer."""
        self._release()
        self.gpu_wanted = False
        if not wants_gpu:
            return
        chosen = self.gpu_source.reserve(self.owner, self.gpus_per_user)
        if chosen is None:
            message = self.gpu_policy.none_free(self.gpu_source)
            self.log.warning("%s: %s Starting it CPU-only.", self.owner, message)
            return
        self.gpu_wanted = True
        self.assigned_gpus = chosen
        if chosen:
            self.log.info("%s: assigned GPUs %s (pool %s)", self.owner, chosen, self.pool_label)

    def _release(self) -> None:
        if self.assigned_gpus:
            released = self.gpu_source.release(self.owner)
            self.log.info("%s: released GPUs %s", self.owner, released or self.assigned_gpus)
            self.assigned_gpus = []

    async def _remove_container_with_other_gpus(self) -> None:
        """A kept (not removed) container was created with some GPU assignment; never restart it with another."""
        if self.remove:
            return  # DockerSpawner removes any leftover container itself
        container = await self.get_object()
        if container is None:
            return
        created_with = container["Config"].get("Labels", {}).get(GPUS_LABEL, "")
        if created_with != ",".join(self.assigned_gpus):
            self.log.info("%s: removing container created with GPUs %r", self.owner, created_with)
            await self.remove_object()
            self.object_id = ""


def _image_choice(spawner: GPUDockerSpawner) -> str:
    """The spawn form's image select, where there is a choice: names escaped, the user's default selected.
    (DockerSpawner 14's own form writes its options as a Python list's repr, and names unescaped.)"""
    allowed = spawner._get_allowed_images()
    if not isinstance(allowed, dict) or len(allowed) <= 1:
        return ""
    default = spawner._default_pick() or next(iter(allowed))
    options = "".join(
        f'<option value="{html.escape(name, quote=True)}"{" selected" if name == default else ""}>'
        f"{html.escape(name)}</option>"
        for name in allowed
    )
    return (
        '<label for="image">Image:</label>'
        f'<select class="form-control" id="image" name="image" required autofocus>{options}</select>'
    )


def _merged(extra, spawner: GPUDockerSpawner, ours: dict) -> dict:
    theirs = extra(spawner) if callable(extra) else extra
    merged = dict(theirs or {})
    for key, value in ours.items():
        if isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        elif isinstance(value, list):
            merged[key] = list(merged.get(key, [])) + value
        else:
            merged[key] = value
    return merged


def _with_gpu_host_config(extra):
    def host_config(spawner: GPUDockerSpawner) -> dict:
        ours = {}
        if spawner.assigned_gpus:
            ours["device_requests"] = [
                {"driver": "", "device_ids": list(spawner.assigned_gpus), "capabilities": [["gpu"]]}
            ]
            if spawner.gpu_shm_size:
                ours["shm_size"] = spawner.gpu_shm_size
        return _merged(extra, spawner, ours)

    host_config._gpu_merged = True
    return host_config


def _with_gpu_labels(extra):
    def create_kwargs(spawner: GPUDockerSpawner) -> dict:
        labels = {
            POOL_LABEL: spawner.pool_label,
            OWNER_LABEL: spawner.owner,
            GPUS_LABEL: ",".join(spawner.assigned_gpus),
        }
        return _merged(extra, spawner, {"labels": labels})

    create_kwargs._gpu_merged = True
    return create_kwargs
