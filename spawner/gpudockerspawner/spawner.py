"""GPUDockerSpawner: DockerSpawner with GPUs handed out from a pool through Docker device requests."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from dockerspawner import DockerSpawner
from jupyterhub.utils import fmt_ip_url, wait_for_http_server
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.web import HTTPError
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, Union, default, observe, validate

from gpudockerspawner import metrics
from gpudockerspawner.budget_keeping import BudgetKeeping
from gpudockerspawner.budgets import parse_period, zone
from gpudockerspawner.form import GPUAvailability, KindChoice, spawn_form
from gpudockerspawner.gpu_line import CAPPED, SPENT, TAKEN, TOO_FEW, GPULine, Waiter
from gpudockerspawner.gpu_rules import parse_gpu_groups
from gpudockerspawner.gpus import GPUPolicy, HostPool, Ledger, refusal
from gpudockerspawner.image_user import passwd_of, resolved_uid
from gpudockerspawner.pool import GPUPool, PoolError, parse_gpu_ids, rebuild
from gpudockerspawner.shared_folders import mounts_for, parse_shared_folders
from gpudockerspawner.start_line import StartLine
from gpudockerspawner.usage import STOPPED, UsageLog
from gpudockerspawner.words import duration, ordinal

OWNER_LABEL = "gpudockerspawner.owner"
GPUS_LABEL = "gpudockerspawner.gpus"
POOL_LABEL = "gpudockerspawner.pool"


@dataclass
class HubProcess:
    """What the spawners of one hub process share, each kept by the configuration it belongs to: the GPU pools
    (rebuilt at hub start from running containers' labels, by pool label, ids and sharing), the start lines (by
    pool label and size), and by pool label the line for a GPU and the ledger of the groups' GPUs; the usage
    records by file (each knows which holds this process has seen alive); on a cluster where spawns wait, the GPUs
    of servers that took their turn and that Swarm has not placed yet, by owner: (kind, count)."""

    pools: dict[tuple, GPUPool] = field(default_factory=dict)
    start_lines: dict[tuple, StartLine] = field(default_factory=dict)
    gpu_lines: dict[str, GPULine] = field(default_factory=dict)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    usage_logs: dict[str, UsageLog] = field(default_factory=dict)
    promised: dict[str, tuple[str, int]] = field(default_factory=dict)


class GPUDockerSpawner(BudgetKeeping, DockerSpawner):
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
        ["refuse", "cpu", "wait"],
        default_value="refuse",
        config=True,
        help="When no GPU is free for a user (none is, or their groups hold all their rules allow): 'refuse' the "
        "spawn with a message to the user (the default), start a CPU-only container ('cpu'), or 'wait' in line "
        "for the next GPU released, first come first served (see gpu_wait_timeout).",
    )
    gpu_wait_timeout = Float(
        1800,
        min=0,
        config=True,
        help="""Seconds a spawn waits in line for a GPU (``on_exhausted = "wait"``) before it ends with a message.
        Added to ``start_timeout`` for the spawns of users who may have a GPU, so that the wait is not
        counted against the server's own start.""",
    )
    gpu_wait_unwatched = Float(
        20,
        min=0,
        config=True,
        help="""Seconds a wait for a GPU goes on after its spawn page was closed or left before it gives up its
        place (a reload of the page within that time keeps it). Waits started without the page (the REST API)
        are not ended for want of one.""",
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
    gpu_groups = Union(
        [List(Unicode()), Dict(value_trait=Dict())],
        default_value=[],
        config=True,
        help="""JupyterHub groups whose members may have GPUs. Empty (the default): every user may. A list of
        group names, or rules by group: ``{"students": {"gpus_per_user": 1, "max_gpus": 2}, "research":
        {"gpus_per_user": 2}}``: each member's GPU server gets ``gpus_per_user`` GPUs (``gpus_per_user`` where
        left out), and the group's members hold at most ``max_gpus`` together (no cap where left out). A user in
        several groups gets the most generous rule that has room.""",
    )
    shared_folders = Dict(
        config=True,
        help="""Folders hub groups share, each mounted into a member's server at its start: read-only for the groups in
        its ``read``, read-write for those in its ``write``; nobody else gets it. ``{name: {"mount":
        "/home/jovyan/shared/<name>", "read": [groups], "write": [groups], "path": optional host path}}``; without
        ``path`` each is a Docker volume of its own, ``shared_volume_prefix`` + name (see shared_folders.py).""",
    )
    shared_volume_prefix = Unicode(
        "jupyterhub-shared-", config=True, help="Prefix of the shared folders' volume names.")
    gpu_hours = Float(
        None,
        allow_none=True,
        config=True,
        help="""GPU-hours per ``budget_period`` for each user whom no group's rule covers (everyone where
        ``gpu_groups`` is empty, else ``gpu_users``); a MIG slice's hour counts its share of a whole GPU. None (the
        default): no budget. Groups set theirs in their rules (``gpu_hours``, ``gpu_hours_together``).""",
    )
    budget_period = Union(
        [Unicode(), Dict()],
        default_value="week",
        config=True,
        help="""How GPU budgets renew where a rule does not say: "day", "week" (from Monday), "month", a repeating
        span like "6 hours", or a term ``{"start": "2026-09-01", "end": "2026-12-20"}``, in ``budget_timezone``.""",
    )
    budget_timezone = Unicode("UTC", config=True, help="The IANA time zone budget periods begin and end in.")
    budget_grace = Float(
        0,
        min=0,
        config=True,
        help="""Minutes a running GPU server may go on past the end of its user's GPU budget before it is stopped
        (its files kept, the reason on the home page). Checked at each poll (``poll_interval``).""",
    )
    gpu_units = Dict(
        value_trait=Dict(),
        config=True,
        help="""What each of ``gpu_ids`` is, by id: ``{"MIG-…": {"kind": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
        "label": "MIG 1g.10gb slice of an A100-SXM4-80GB", "share": 0.1429}}`` (a whole GPU's share is 1). A
        server's GPUs are all of one kind; people choose the kind on the spawn form where there are several, and
        ``kinds_by_image`` may restrict it. Ids not described are of one kind, "GPU". The deploy fills it from
        ``nvidia-smi``.""",
    )
    kinds_by_image = Dict(
        value_trait=List(Unicode()),
        config=True,
        help="""The kinds of GPU a server of an image (its name in allowed_images) may hold, in order of
        preference: ``{"Big models": ["NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090"]}``. Images not listed
        may hold any kind.""",
    )
    gpu_users = List(
        Unicode(),
        config=True,
        help="Users who may have a GPU whatever their groups (counted against no group's cap), such as the "
        "user of a deploy's GPU check.",
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

    ready_poll_interval = Float(
        0.1,
        min=0,
        config=True,
        help="""Seconds between this spawner's checks, after the container started, that its server answers;
        start() returns once it does, so that the hub's own check finds it up at once. 0: start() returns as
        soon as the container runs and the hub waits with its own checks, whose random waits double up to 5 s
        apart (measured on a 2-core host: a server seen 1.06 s after it answered at the median, against 0.04 s).""",
    )

    usage_db = Unicode(
        "",
        config=True,
        help="""A SQLite file where every hold of GPUs is recorded (who, which, from when to when, why it ended):
        the GPU-seconds per user, group and GPU that the GPU service reports (see gpudockerspawner.usage). Put it
        on the hub's data volume, so that it outlives the hub's container. Empty (the default): none is kept.""",
    )

    assigned_gpus = List(Unicode(), help="GPUs the current container holds; persisted in the spawner state.")
    gpu_group = Unicode("", help="The group whose rule the current server's GPUs count against; persisted.")
    # Whether the server being started is to hold GPUs (where the source names them only once it is placed,
    # assigned_gpus is empty until then), and how many.
    gpu_wanted = False
    gpu_count = 0
    # The server's place in the line for a GPU, while it waits for one.
    _waiter: Waiter | None = None
    _configured_start_timeout: float | None = None

    # What this hub process's spawners share (a test gives each of its hubs a fresh one).
    shared = HubProcess()
    # The GPU policy of this spawner's configuration, made when first asked and again after the settings change.
    _policy: GPUPolicy | None = None
    # Why the current server ended, where the spawner learns it (its container exited on its own).
    _end_reason = STOPPED
    _turn: asyncio.Future | None = None
    # cpu_limit and mem_limit as configured, before any pick's limits replaced them.
    _configured_limits: dict | None = None

    @validate("gpu_ids")
    def _valid_gpu_ids(self, proposal):
        try:
            return parse_gpu_ids(proposal.value)
        except PoolError as error:
            raise TraitError(f"GPUDockerSpawner.gpu_ids: {error}") from None

    @validate("shared_folders")
    def _valid_shared_folders(self, proposal):
        try:
            parse_shared_folders(proposal.value)
        except ValueError as error:
            raise TraitError(f"GPUDockerSpawner.{error}") from None
        return proposal.value

    @property
    def volume_binds(self):
        """DockerSpawner's binds (the home), and the shared folders of the user's hub groups as they are now."""
        binds = super().volume_binds
        folders = parse_shared_folders(self.shared_folders)
        binds.update(mounts_for(folders, [group.name for group in self.user.groups], self.shared_volume_prefix))
        return binds

    @validate("gpu_groups")
    def _valid_gpu_groups(self, proposal):
        try:
            return parse_gpu_groups(proposal.value)
        except ValueError as error:
            raise TraitError(f"GPUDockerSpawner.gpu_groups: {error}") from None

    @observe("gpu_groups", "gpus_per_user", "on_exhausted", "gpu_hours", "budget_period")
    def _policy_changed(self, change):
        self._policy = None

    @validate("budget_period", "budget_timezone")
    def _valid_budget(self, proposal):
        check = parse_period if proposal.trait.name == "budget_period" else zone
        try:
            check(proposal.value)
        except ValueError as error:  # its words name the setting and the value
            raise TraitError(f"GPUDockerSpawner.{error}") from None
        return proposal.value

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
        key = (self.pool_label, tuple(self.gpu_ids), self.users_per_gpu,
               tuple(self.kind_of(gpu) for gpu in self.gpu_ids))
        pools = self.shared.pools
        if key not in pools:
            pools[key] = self._rebuild_pool()
            metrics.register(lambda: [(label, pool) for (label, *_), pool in pools.items()])
        return pools[key]

    def kind_of(self, gpu: str) -> str:
        # One unit's entry of _units(), without making the whole mapping (the pool's key asks for every unit).
        return unit_kind(self.gpu_units.get(gpu) or {})

    def _units(self) -> dict[str, dict]:
        """The units servers here may be given, in pool order, with what the deploy said of each (``gpu_units``:
        its kind, label and share of a whole GPU; nothing where it said nothing)."""
        return {gpu: self.gpu_units.get(gpu) or {} for gpu in self.gpu_ids}

    def kinds(self) -> dict[str, str]:
        """The kinds of GPU here that this user's groups' rules let them hold, each with its label, in pool
        order."""
        ruled = self.gpu_policy.kinds_for(self._group_names())
        return {kind: str(unit.get("label") or kind) for unit in self._units().values()
                if (kind := unit_kind(unit)) and (ruled is None or kind in ruled)}

    def wanted_kinds(self) -> list[str]:
        """The kinds this server may hold, in order of preference (none: any): the one chosen on the form, within
        what its image and the user's groups' rules allow."""
        by_image = list(self.kinds_by_image.get(self.user_options.get("image") or "", []))
        chosen = self.user_options.get("gpu_kind") or ""
        offered = self.kinds()
        if not chosen:
            ruled = self.gpu_policy.kinds_for(self._group_names())
            if by_image and ruled is not None and not set(by_image) & ruled:
                raise refusal("Your groups may hold no GPU of the kinds this image runs on "
                              f"({', '.join(by_image)}); choose another image or kind.")
            return by_image
        if chosen not in offered or (by_image and chosen not in by_image):
            raise refusal(f"No GPU of the kind {chosen!r} is offered for this server; choose another on the form.")
        return [chosen]

    def _asked_kinds(self) -> list[str]:
        """The kinds this server waits for or is refused for: those asked for, else those the user's groups' rules
        allow (none: any)."""
        wanted = self.wanted_kinds()
        if wanted or self.gpu_policy.kinds_for(self._group_names()) is None:
            return wanted
        return list(self.kinds())

    def _rebuild_pool(self) -> GPUPool:
        running = {}
        for container in self.client.containers(filters={"label": [f"{POOL_LABEL}={self.pool_label}", OWNER_LABEL]}):
            labels = container["Labels"]
            ids = [gpu for gpu in labels.get(GPUS_LABEL, "").split(",") if gpu]
            if ids:
                running[labels[OWNER_LABEL]] = ids
        pool, problems = rebuild(self.gpu_ids, self.users_per_gpu, running,
                                 {gpu: self.kind_of(gpu) for gpu in self.gpu_ids})
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
        if self._policy is None:
            try:
                self._policy = GPUPolicy.from_groups(self.gpu_groups, self.gpus_per_user, self.on_exhausted,
                                                     self.gpu_hours, self.budget_period)
            except ValueError as error:
                raise TraitError(f"GPUDockerSpawner.gpu_groups: {error}") from None
        return self._policy

    def gpu_line(self) -> GPULine:
        return self.shared.gpu_lines.setdefault(self.pool_label, GPULine())

    def ledger(self) -> Ledger:
        return self.shared.ledgers.setdefault(self.pool_label, Ledger())

    def usage(self) -> UsageLog | None:
        if not self.usage_db:
            return None
        return self.shared.usage_logs.setdefault(self.usage_db, UsageLog(self.usage_db))

    def _holding(self, node: str = "") -> None:
        """The current server's GPUs are reserved for it from now: its hold starts in the usage record."""
        if self.usage() is not None and self.assigned_gpus:
            self._end_reason = STOPPED
            self.usage().opened(self.owner, self.assigned_gpus, self.gpu_group, node, **self._held_kind())

    def _held_kind(self) -> dict:
        """The kind of the GPUs the current server holds and each one's share of a whole GPU, for its hold's record
        (nothing said where no kinds are configured)."""
        unit = self._units().get(self.assigned_gpus[0]) if self.assigned_gpus else None
        if not unit:
            return {}
        return {"kind": unit_kind(unit), "share": float(unit.get("share") or 1.0)}

    def _group_names(self) -> list[str]:
        """The user's hub groups, and "" (the rule of ``gpu_users``) for one of those."""
        return [group.name for group in self.user.groups] + ([""] if self.user.name in self.gpu_users else [])

    def load_state(self, state):
        super().load_state(state)
        recorded = list(state.get("gpus", []))
        self.assigned_gpus = self.gpu_source.restored(self.owner, recorded, self.log)
        self.gpu_group = state.get("gpu_group", "")
        if self.assigned_gpus:
            self.ledger().hold(self.owner, self.gpu_group, len(self.assigned_gpus))
        if recorded:
            self._hold_resumed(recorded, state.get("node", ""))

    def _hold_resumed(self, recorded: list[str], node: str) -> None:
        """The usage record after a hub (re)start: a hold whose GPUs the server still has goes on (alive only once
        the hub's check finds the server running: see UsageLog.closed); one whose container is gone ended at its
        last sign of life; one whose container holds other GPUs than recorded ended then, and its own begins."""
        usage = self.usage()
        if usage is None:
            return
        if sorted(self.assigned_gpus) == sorted(recorded):
            usage.resumed(self.owner, self.assigned_gpus, self.gpu_group, node, **self._held_kind())
            return
        usage.closed(self.owner)
        if self.assigned_gpus:
            usage.opened(self.owner, self.assigned_gpus, self.gpu_group, node, **self._held_kind())

    def get_state(self):
        state = super().get_state()
        if self.assigned_gpus:
            state["gpus"] = list(self.assigned_gpus)
            state["gpu_group"] = self.gpu_group
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
        return self.gpu_policy.may_have(self._group_names(), self.gpu_source)

    def _get_allowed_images(self):
        """The allowed images, less those that hold a GPU for a user who may not have one: such a user is not
        offered them, and a start that asks for one is refused (DockerSpawner's check_allowed)."""
        allowed = super()._get_allowed_images()
        if isinstance(allowed, dict) and self.gpu_images and not self.may_use_gpu():
            allowed = {name: image for name, image in allowed.items() if not {name, image} & set(self.gpu_images)}
        return allowed

    async def gpu_availability(self) -> GPUAvailability:
        """What the spawn form says beside each GPU choice: the pool's own figures (those of the GPU table) and
        what pressing Start would do now."""
        groups, policy, ledger = self._group_names(), self.gpu_policy, self.ledger()
        roomy = policy.rule_with_room(groups, ledger)
        rule = policy.rule_with_room(groups, ledger, spendable=self._spendable)
        count = (rule or roomy or policy.rules_for(groups)[0]).gpus_per_user
        free, total, waiting = await self.gpu_source.free(), self.gpu_source.total(), len(self.gpu_line())
        on_exhausted = policy.on_exhausted
        budget = self.standing(rule or roomy)
        if roomy is None:
            why = policy.capped(groups, ledger)
        elif rule is None:
            why = self.budget_spent()
            if policy.waits:
                on_exhausted = "refuse"  # no GPU released brings hours back: no line to join
        elif waiting:
            why = f"{waiting} {'people wait' if waiting > 1 else 'person waits'} for a GPU"
        elif free < count:
            why = policy.all_in_use(self.gpu_source)
        else:
            why = ""
        kinds = self.kinds()
        choices = tuple([KindChoice(kind, label, await self.gpu_source.free(kind), self.gpu_source.total(kind))
                         for kind, label in kinds.items()]) if len(kinds) > 1 else ()
        return GPUAvailability(free, total, waiting, count, why, on_exhausted, choices,
                               self.users_per_gpu if self.gpu_ids else 1, budget.sentence() if budget else "")

    @default("options_form")
    def _gpu_options_form(self):
        async def options_form(spawner):
            return spawn_form(spawner, await spawner.gpu_availability() if spawner.may_use_gpu() else None)

        return options_form

    @default("options_from_form")
    def _gpu_options_from_form(self):
        image_options = DockerSpawner._default_options_from_form(self)

        def options_from_form(formdata):
            options = image_options(formdata)
            if "gpu" in formdata:
                options["gpu"] = formdata["gpu"][0]
            if formdata.get("gpu_kind", [""])[0]:
                options["gpu_kind"] = formdata["gpu_kind"][0]
            return options

        return options_from_form

    def run_pre_spawn_hook(self):
        # The hub bounds start() by start_timeout, read before start() runs: a wait in line for a GPU is not
        # counted against the server's own start.
        if self._configured_start_timeout is None:
            self._configured_start_timeout = self.start_timeout
        waits = self.gpu_policy.waits and self.may_use_gpu()
        self.start_timeout = self._configured_start_timeout + (int(self.gpu_wait_timeout) if waits else 0)
        return super().run_pre_spawn_hook()

    async def start(self):
        picked = self.user_options.get("image") or self._default_pick()
        if picked:
            # Kept with the server, where admins see it.
            self.user_options = {**self.user_options, "image": picked}
        self._apply_limits(picked)
        image = await self.check_allowed(picked) if picked else self.image
        if image in self.own_user_images:
            await self._refuse_if_root(image)
        try:
            await self._take_gpus(wants_gpu=self._wants_gpu(picked, image))
            await self._remove_container_with_other_gpus()
            if not self.spawns_at_once:
                ip, port = await super().start()
                await self._until_answering(ip, port)
                return ip, port
            async with self._line().turn(on_wait=self._waiting_in_line):
                self._turn = None
                ip, port = await super().start()
                # The server's boot is the costly part: it keeps its place in line until it answers.
                await self._until_answering(ip, port, required=True)
                return ip, port
        except BaseException:
            self._release()
            raise
        finally:
            self._turn = None

    async def _until_answering(self, ip: str, port: int, required: bool = False) -> None:
        """Until the started server answers HTTP (any status below 500, as the hub's own check), polled every
        ``ready_poll_interval`` with jitter; with no interval, JupyterHub's backing-off wait where the line
        needs the answer (``required``), and none otherwise."""
        if self.server is None:
            # No server record to reach it by (a spawner driven outside the hub, as DockerSpawner's own tests
            # drive it): the caller checks the server itself, as it would with DockerSpawner.
            return
        url = f"{self.server.proto}://{fmt_ip_url(ip)}:{port}{self.server.base_url}"
        if not self.ready_poll_interval:
            if required:
                await wait_for_http_server(url, timeout=self.http_timeout)
            return
        started = time.monotonic()
        deadline, looked = started + self.http_timeout, started
        while True:
            # Tornado's client, which every JupyterHub has (6 asks with aiohttp, 5 with this).
            try:
                response = await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False,
                                                         request_timeout=max(self.ready_poll_interval * 10, 1))
                if response.code < 500:
                    return
            except (OSError, HTTPClientError):
                pass  # not listening yet, or no answer in time
            # A server that died in its boot is told at once, not after http_timeout as the hub's own wait would.
            if time.monotonic() - looked >= 1:
                looked = time.monotonic()
                status = await self._ended_while_starting()
                if status is not None:
                    raise RuntimeError(f"Your server stopped ({status}) {looked - started:.0f} s into its start, "
                                       "before it answered: an admin finds why in its container's log.")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Server at {url} didn't respond in {self.http_timeout} seconds")
            await asyncio.sleep(random.uniform(0.5, 1) * self.ready_poll_interval)

    async def _ended_while_starting(self):
        """The server's exit status if its container is no longer running, else None; unlike poll(), it keeps
        the GPUs (the failed start releases them)."""
        return await DockerSpawner.poll(self)

    async def _refuse_if_root(self, image: str) -> None:
        user = ((await self.docker("inspect_image", image)).get("Config") or {}).get("User") or ""
        name = user.split(":", 1)[0].strip()
        # A name is looked up in the image's own passwd: any name may have uid 0 there.
        passwd = None if name.isdigit() else await asyncio.get_running_loop().run_in_executor(
            self.executor, passwd_of, self.client, image)
        uid = resolved_uid(user, passwd)
        if uid is None:
            self.log.warning("%s: image %s names USER %s, which its /etc/passwd lacks: refused", self.owner, image,
                             user)
            raise refusal(f"The image {image} names the user {name!r}, which it does not have: an admin must give "
                          "it a USER that exists in the image and is not root.")
        if uid == 0:
            self.log.warning("%s: image %s runs as %s (uid 0): refused", self.owner, image, user or "root (no USER)")
            raise refusal(f"The image {image} runs its server as root, which would make you root in your server: "
                          "an admin must give it a USER that is not root (the Jupyter Docker Stacks images run as "
                          "jovyan), or build it from packages on the standard image.")

    def _line(self) -> StartLine:
        key = (self.pool_label, self.spawns_at_once)
        if key not in self.shared.start_lines:
            self.shared.start_lines[key] = StartLine(self.spawns_at_once)
        return self.shared.start_lines[key]

    def _waiting_in_line(self, turn: asyncio.Future) -> None:
        self._turn = turn

    async def progress(self):
        """The spawn page's news for as long as the spawn lasts (the hub stops asking when it ends): the place in
        line for a GPU while the server waits for one (on a cluster that may come after Swarm found none free),
        how many start before it while it waits to start, and otherwise that it is being started."""
        starting_said = False
        while True:
            waiter, turn = self._waiter, self._turn
            if waiter is not None and self.gpu_line().place(waiter) is not None:
                async for event in self._gpu_wait_progress(waiter):
                    yield event
                starting_said = False
            elif turn is not None and not turn.done():
                async for event in self._start_line_progress(turn):
                    yield event
            elif not starting_said:
                async for event in super().progress():
                    yield event
                starting_said = True
            else:
                await asyncio.sleep(0.5)

    async def _start_line_progress(self, turn: asyncio.Future):
        said = None
        while not turn.done():
            ahead = self._line().ahead_of(turn) + self._line().starting
            if ahead != said:
                said = ahead
                yield {"progress": 5, "message": f"Waiting in line: {ahead} server{'s' if ahead != 1 else ''} "
                                                 "of other users start before yours"}
            await asyncio.sleep(1)

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            self._release()

    async def poll(self):
        status = await super().poll()
        if status is not None:
            self._end_reason = "its container was gone" if status == 0 else f"ended on its own ({status})"
            self._release()
            return status
        return await self._running_on()

    def _alive(self) -> None:
        """A poll found the server running: its hold's last sign of life (the hub polls every poll_interval)."""
        if self.assigned_gpus and self.usage() is not None:
            self.usage().seen([self.owner])

    async def _running_on(self) -> str | None:
        """A poll's answer for a server found running: None, or, where its GPU budget has ended, why, once it is
        stopped (the hub stops no server that a poll found stopped: it only clears it, which releases its GPUs)."""
        self._alive()
        ended = self._budget_ended()
        if ended:
            await self.stop()
        return ended

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

    async def _take_gpus(self, wants_gpu: bool) -> None:
        """The server's GPUs, where it is to have some: reserved now from the host's pool, or (``gpu_wanted``)
        left for the source to name when it places the server; where its groups' rules or the pool leave none,
        the policy's answer: the refusal, a CPU-only server, or a place in line."""
        self._release()
        self.gpu_wanted = False
        self.gpu_count = 0
        if not wants_gpu:
            return
        line = self.gpu_line()
        if self.gpu_policy.waits and len(line):
            # While anyone waits, a GPU released goes to the first in line: a newcomer joins the end.
            await self._wait_for_gpu(f"{len(line)} wait{'s' if len(line) == 1 else ''} for a GPU before you")
            return
        answer = await self._try_take()
        if answer == TAKEN:
            return
        message = self._why_not(answer)
        if self.gpu_policy.waits:
            await self._wait_for_gpu(message)
        else:
            self.log.warning("%s: %s Starting it CPU-only.", self.owner, message)

    async def _try_take(self, waiter: Waiter | None = None, avoid: frozenset[str] = frozenset()) -> str:
        """The GPUs taken now, under the most generous of the user's rules with room; or why not. For a
        ``waiter`` of the line, only while it is still in line."""
        wanted = self.wanted_kinds()
        groups, ledger = self._group_names(), self.ledger()
        rule = self.gpu_policy.rule_with_room(groups, ledger, wanted, self._spendable)
        if rule is None:
            return CAPPED if self.gpu_policy.rule_with_room(groups, ledger, wanted) is None else SPENT
        # Where spawns wait, a newcomer too asks whether enough are free for it: on a cluster, GPUs promised to
        # the line's last served are not yet placed, and are theirs.
        if (waiter is not None or self.gpu_policy.waits) and not await self._frees_enough(rule.gpus_per_user):
            return TOO_FEW
        if waiter is not None and self.gpu_line().place(waiter) is None:
            return TOO_FEW  # it left while the source was asked
        # No await between the pool's check and the reservation: atomic in the hub's event loop.
        chosen = self.gpu_source.reserve(self.owner, rule.gpus_per_user, rule.allows(wanted), avoid)
        if chosen is None:
            return TOO_FEW
        self.gpu_wanted, self.gpu_count, self.gpu_group = True, rule.gpus_per_user, rule.group
        self.assigned_gpus = chosen
        self.ledger().hold(self.owner, rule.group, rule.gpus_per_user)
        self._holding()
        if chosen:
            self.log.info("%s: assigned GPUs %s (pool %s%s)", self.owner, chosen, self.pool_label,
                          f", {rule}" if rule.group else "")
        return TAKEN

    async def _frees_enough(self, count: int) -> bool:
        """Whether ``count`` GPUs are free for the first in line: the host's pool answers as it reserves."""
        return True

    def _why_not(self, answer: str) -> str:
        """The policy's words where no GPU could be taken (raised as the refusal under ``refuse``)."""
        if answer == CAPPED:
            return self.gpu_policy.answer(self.gpu_policy.capped(self._group_names(), self.ledger()))
        if answer == SPENT:
            spent = self.budget_spent(self.wanted_kinds()) + "."
            if self.gpu_policy.waits:  # no GPU released brings hours back: refused, not in line
                raise refusal(spent + " Waiting in line would not help; start a CPU-only server meanwhile.")
            return self.gpu_policy.answer(spent)
        return self.gpu_policy.none_free(self.gpu_source, kinds=self._asked_labels())

    def _asked_labels(self) -> dict[str, str]:
        """The kinds this server waits for or is refused for, with their labels (none: any)."""
        labels = self.kinds()
        return {kind: labels.get(kind, kind) for kind in self._asked_kinds()}

    async def _wait_for_gpu(self, why: str, front: bool = False) -> None:
        """In line until this server's GPUs are taken for it (or gpu_wait_timeout, Cancel, or the page left)."""
        line = self.gpu_line()

        async def take(avoid: frozenset[str]) -> str:
            answer = await self._try_take(waiter, avoid)
            if answer == SPENT:  # its hours ran out (a server of its own) while it waited: out of the line
                self._why_not(answer)
            return answer

        waiter = self._waiter = line.join(self.owner, take, front=front, kinds=tuple(self._asked_kinds()))
        self.log.info("%s: waiting for a GPU, %s in line (%s)", self.owner, line.place(waiter), why)
        try:
            await line.wait(waiter, self.gpu_wait_timeout)
        except asyncio.TimeoutError:
            raise refusal(f"No GPU came free for you within {duration(self.gpu_wait_timeout)}; try again later, "
                          "or start a CPU-only server.") from None
        finally:
            self._waiter = None
        self.log.info("%s: waited %.1fs in line for a GPU", self.owner, time.monotonic() - waiter.since)

    async def _gpu_wait_progress(self, waiter: Waiter):
        """The spawn page's news while ``waiter`` is in line: its place as it moves. The page that shows it
        counts as watching; where the last one goes, the wait ends a little later (gpu_wait_unwatched)."""
        line = self.gpu_line()
        waiter.watchers += 1
        said, beat = None, time.monotonic()
        try:
            while line.place(waiter) is not None:
                message = f"You are {ordinal(line.place(waiter))} in line for a GPU"
                if waiter.found == CAPPED:  # the rule that holds this one back, not the pool
                    message += ". " + self.gpu_policy.capped(self._group_names(), self.ledger())
                if message != said:
                    said, beat = message, time.monotonic()
                    yield {"progress": 5, "message": message}
                elif time.monotonic() - beat > 5:
                    # No words (the page shows none): a page that is gone is noticed when this cannot be sent.
                    beat = time.monotonic()
                    yield {"progress": 5}
                await asyncio.sleep(0.5)
        finally:
            waiter.watchers -= 1
            if not waiter.watchers and line.place(waiter) is not None:
                asyncio.get_running_loop().call_later(self.gpu_wait_unwatched, self._unless_watched, waiter)

    def _unless_watched(self, waiter: Waiter) -> None:
        if waiter.watchers or self.gpu_line().place(waiter) is None:
            return
        self.log.info("%s: left the spawn page while waiting for a GPU: out of the line", self.owner)
        self.gpu_line().leave(waiter, refusal("You left the page while you waited for a GPU, and so left the "
                                              "line; start again to wait anew."))

    def _release(self) -> None:
        held = self.ledger().drop(self.owner)
        released = []
        if self.assigned_gpus:
            released = self.gpu_source.release(self.owner) or self.assigned_gpus
            self.assigned_gpus = []
            why = self._end_reason
            if self.usage() is not None:
                self.usage().closed(self.owner, why)
                ended = self.usage().last_ended(self.user.name, self.name)
                why = ended.reason if ended and ended.reason else why  # a culler's reason, where it gave one
            self.log.info("%s: released GPUs %s (%s)", self.owner, released, why)
            self._end_reason = STOPPED
        if held or released:
            self.gpu_line().released()

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


def unit_kind(unit: dict) -> str:
    """A unit's kind, as ``gpu_units`` (or a Swarm node's label) says it; "GPU" where nothing does."""
    return str(unit.get("kind") or "GPU")


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
