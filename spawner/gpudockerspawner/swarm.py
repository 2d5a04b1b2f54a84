"""GPUSwarmSpawner: each user server a Docker Swarm service on one of the GPU nodes, with Swarm's scheduler
handing out the GPUs (generic resources) instead of the hub's own pool."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from urllib.parse import urlparse

from docker.errors import NotFound
from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    TaskTemplate,
)
from dockerspawner import SwarmSpawner
from tornado.web import HTTPError
from traitlets import Bool, Float, Int, List, Unicode

from gpudockerspawner.gpu_line import TAKEN
from gpudockerspawner.gpus import SwarmResources, refusal
from gpudockerspawner.placement import (
    NO_RESOURCES,
    SERVERS_LABEL,
    assigned_gpus,
    assigned_units,
    node_kinds,
    node_units,
    serving_nodes,
    task_address,
    unplaceable,
)
from gpudockerspawner.spawner import OWNER_LABEL, POOL_LABEL, GPUDockerSpawner, unit_kind

# What Docker before 23.0 says of a task holding a generic resource whenever the task's node changes (its swarmkit's
# constraint enforcer tests the resource backwards, moby/moby#44378); a node changes when it first runs a task on
# the network, among other times. Such a start is tried again.
ENFORCER_REJECTION = "assigned node no longer meets constraints"
START_ATTEMPTS = 3
# Task states on the way to running, and the ones it never comes back from.
STARTING = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
ENDED = {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}


class GPUSwarmSpawner(GPUDockerSpawner, SwarmSpawner):
    """GPUDockerSpawner's choices (profiles, GPU groups, kinds, the start line, the GPU table), each server a Swarm
    service: a GPU server asks for ``gpus_per_user`` of the generic resource of the kind it is to have (the nodes
    advertise one resource per kind of unit, placement.resource_of), and Swarm picks the node and the units; the
    spawner reads back which, and keeps them in its state."""

    home_on_node = Bool(
        True,
        config=True,
        help="""Start a user's servers on the node that holds their home volume (the node of their first
        server): a placement constraint kept in the spawner's state. Turn off where homes are on a volume
        driver that every node reaches (``volume_driver``).""",
    )
    nodes_cache_seconds = Float(10, config=True, help="How long the nodes' GPU count is reused before asking again.")
    release_wait = Float(
        60,
        config=True,
        help="""Seconds a GPU server waits for Swarm to let go of a GPU that no running server holds any more
        (a server just stopped) before it is refused. Where every GPU is held, it is refused at once.""",
    )

    fence_network = Bool(
        False,
        config=True,
        help="""Have each server's image fence it in on ``network_name``: the hub's API port is all it may connect
        to there, and the cloud metadata address is out of reach. No host firewall sees the traffic between
        containers on an overlay network, so the rules go into each container's own network namespace, set by
        the image's entry point (which needs ``iptables``, the capabilities NET_ADMIN and SETPCAP that it drops
        before the server starts, and JUPYTERHUB_GPU_FENCE, the network's subnets, with
        JUPYTERHUB_GPU_FENCE_PORT, the hub's API port and ``fence_ports``). The jupyterhub-gpu single-user image
        has such an entry point.""",
    )
    fence_ports = List(
        Int(),
        config=True,
        help="""Ports of the hub's container besides its API port that a fenced-in server may connect to (the GPU
        service's port for servers). Each below 1024, where no user container may listen.""",
    )

    node = Unicode("", help="The node the current server runs on (its hostname); persisted in the state.")
    home_node = Unicode("", help="The id of the node that holds the user's home volume; persisted in the state.")

    _nodes_read: tuple[float, list] = (0.0, [])
    # The kind this server's service asks Swarm for, with its resource, once chosen (see _choose_kind); and the
    # units free by kind as last counted.
    _chosen: tuple[str, str] = ("", "")
    _free_by_kind: dict[str, int] = {}
    # While a start waits for Swarm to let go of a GPU: until when, and whether the log said so.
    _release_patience = 0.0
    _said_waiting = False

    @property
    def gpu_source(self) -> SwarmResources:
        """Swarm's accounting is the pool: the GPU nodes' generic resources, which it hands out itself."""
        return SwarmResources(self._count_units, self._free_gpus, self._choose_kind)

    def _node_units(self) -> list[dict]:
        """Each serving node's units, with its kind, label, share and generic resource (placement.node_kinds)."""
        units = []
        for node in self._nodes():
            kinds = node_kinds(node)
            units += [{**kinds[resource], "resource": resource, "uuid": uuid, "node": node.get("ID", "")}
                      for resource, uuid in node_units(node)]
        return units

    def _units(self) -> dict[str, dict]:
        # By UUID, for what a UUID is (two nodes' units may share one only where a stand-in made them up); counts
        # go by _node_units.
        return {unit["uuid"]: unit for unit in self._node_units()}

    def kind_of(self, gpu: str) -> str:
        return unit_kind(self._units().get(gpu) or {})

    def _count_units(self, kind: str | None = None) -> int:
        return sum(1 for unit in self._node_units() if kind is None or unit["kind"] == kind)

    def _promised(self) -> Counter:
        """Units promised to other servers that took their turn and that Swarm has not placed yet, by kind."""
        promised = Counter()
        for owner, (kind, count) in self.shared.promised.items():
            if owner != self.owner:
                promised[kind] += count
        return promised

    def _choose_kind(self, count: int, kinds: list[str]) -> bool:
        """The kind this server's service asks Swarm for: of ``kinds`` (in order of preference; none: any, the one
        with the most free first), the first with ``count`` free as last counted, else the first the nodes have
        that many of (Swarm then says none is free, and the policy answers); False where none has that many."""
        units = self._node_units()
        totals = Counter(unit["kind"] for unit in units)
        promised = self._promised()
        free = {kind: self._free_by_kind.get(kind, 0) - promised[kind] for kind in totals}
        candidates = [kind for kind in kinds or sorted(totals, key=lambda kind: -free[kind]) if totals[kind] >= count]
        if not candidates:
            return False
        kind = next((kind for kind in candidates if free[kind] >= count), candidates[0])
        self._chosen = (kind, next(unit["resource"] for unit in units if unit["kind"] == kind))
        return True

    async def _frees_enough(self, count: int) -> bool:
        """Whether ``count`` units of a kind this server may have are free for the first in line: free on the
        nodes, less those promised to servers that took their turn and that Swarm has not placed yet."""
        promised = self._promised()
        kinds = self._asked_kinds() or list(self._free_by_kind)
        return any(self._free_by_kind.get(kind, 0) - promised[kind] >= count for kind in kinds)

    async def _try_take(self, waiter=None, avoid: frozenset[str] = frozenset()) -> str:
        self._free_by_kind = dict(await self._free_counts())
        answer = await super()._try_take(waiter, avoid)
        if answer == TAKEN and self.gpu_policy.waits:
            self.shared.promised[self.owner] = (self._chosen[0], self.gpu_count)
        return answer

    def _release(self) -> None:
        self.shared.promised.pop(self.owner, None)
        super()._release()

    def load_state(self, state):
        super().load_state(state)
        self.node = state.get("node", "")
        self.home_node = state.get("home_node", "")

    def get_state(self):
        state = super().get_state()
        if self.node:
            state["node"] = self.node
        if self.home_node:
            state["home_node"] = self.home_node
        return state

    def clear_state(self):
        # The home node outlives the server: the user's files stay there.
        super().clear_state()
        self.node = ""

    def _nodes(self) -> list:
        """The nodes that take user servers, read at most every ``nodes_cache_seconds``."""
        read_at, nodes = self._nodes_read
        if time.monotonic() - read_at > self.nodes_cache_seconds:
            nodes = serving_nodes(self.client.nodes())
            GPUSwarmSpawner._nodes_read = (time.monotonic(), nodes)
        return nodes

    def get_env(self):
        env = super().get_env()
        if self.gpu_wanted:
            # Swarm's own variable names the task's GPUs: NVIDIA's runtime reads it in place of NVIDIA_VISIBLE_DEVICES
            # (swarm-resource), and the image's entry point narrows CUDA to it. The hub, which cannot know them
            # before Swarm has placed the task, names none.
            env.pop("NVIDIA_VISIBLE_DEVICES", None)
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["NVIDIA_VISIBLE_DEVICES"] = "void"
        return env

    @property
    def mounts(self):
        """Named volumes as volumes (SwarmSpawner makes every mount a bind, which a volume name is not), on the
        node's local driver or on ``volume_driver``; paths as binds."""
        mounts = []
        for source, volume in self.volume_binds.items():
            named = not source.startswith("/")
            driver = None
            if named and self.volume_driver:
                options = {key: self.format_volume_name(value, self) for key,
                           value in self.volume_driver_options.items()}
                driver = DriverConfig(self.volume_driver, options or None)
            mounts.append(Mount(target=volume["bind"], source=source, type="volume" if named else "bind",
                                read_only=volume["mode"] == "ro", driver_config=driver))
        return mounts

    def _placement(self) -> Placement:
        constraints = [f"node.labels.{SERVERS_LABEL}==true"]
        if self._on_home_node():
            constraints.append(f"node.id=={self.home_node}")
        return Placement(constraints=constraints)

    async def _fence(self) -> dict:
        """What the image's entry point needs to fence the server in (see ``fence_network``)."""
        network = await self.docker("inspect_network", self.network_name)
        configs = (network.get("IPAM") or {}).get("Config") or []
        subnets = [config["Subnet"] for config in configs if config.get("Subnet")]
        if not subnets:
            raise RuntimeError(f"Network {self.network_name} names no subnet: the server cannot be fenced in on it")
        return {"JUPYTERHUB_GPU_FENCE": " ".join(subnets),
                "JUPYTERHUB_GPU_FENCE_PORT": " ".join(map(str, [urlparse(self.hub.api_url).port, *self.fence_ports]))}

    async def create_object(self):
        host_config = self._eval_if_callable(self.extra_host_config) or {}
        create = dict(self._eval_if_callable(self.extra_create_kwargs) or {})
        labels = {**create.pop("labels", {}), POOL_LABEL: self.pool_label, OWNER_LABEL: self.owner}
        env, cap_add = self.get_env(), list(host_config.get("cap_add") or [])
        if self.fence_network:
            env.update(await self._fence())
            cap_add += [cap for cap in ("NET_ADMIN", "SETPCAP") if cap not in cap_add]
        container = ContainerSpec(
            image=self.image, env=env, args=await self.get_command(), mounts=self.mounts,
            user=create.pop("user", None), labels=labels,
            cap_add=cap_add or None, cap_drop=host_config.get("cap_drop"),
            sysctls=host_config.get("sysctls"), **self.extra_container_spec,
        )
        if create:
            self.log.warning("%s: extra_create_kwargs %s have no Swarm counterpart and are left out", self.owner,
                             sorted(create))
        resources = Resources(
            mem_limit=self.mem_limit, mem_reservation=self.mem_guarantee,
            cpu_limit=int(self.cpu_limit * 1e9) if self.cpu_limit else None,
            cpu_reservation=int(self.cpu_guarantee * 1e9) if self.cpu_guarantee else None,
            generic_resources={self._chosen[1]: self.gpu_count} if self.gpu_wanted else None,
            **self.extra_resources_spec,
        )
        if host_config.get("pids_limit"):
            resources.setdefault("Limits", {})["Pids"] = host_config["pids_limit"]
        task = TaskTemplate(
            container_spec=container, resources=resources, placement=self._placement(),
            # A server whose node goes away is stopped, not started again elsewhere without its files.
            restart_policy=RestartPolicy(condition="none"),
            networks=[self.network_name] if self.network_name else [], **self.extra_task_spec,
        )
        # The hub and the proxy reach the task by its address: no virtual IP (and no IPVS) needed.
        endpoint = EndpointSpec(mode="dnsrr", **self.extra_endpoint_spec)
        service = await self.docker("create_service", task_template=task, endpoint_spec=endpoint,
                                    name=self.service_name, labels=labels)
        while not await self.docker("tasks", filters={"service": self.service_name}):
            await asyncio.sleep(0.2)
        return service

    async def start_object(self):
        """Until the task runs; a task that no node can take, for want of a free GPU, ends the spawn at once
        (or, under ``on_exhausted = "cpu"``, becomes a CPU-only server) instead of waiting out start_timeout."""
        self._release_patience = time.monotonic() + self.release_wait
        self._said_waiting = False
        attempts, delay = 1, 0.2
        while True:
            task = await self.get_task()
            if not task:
                raise RuntimeError(f"Service {self.service_name} not found")
            reason = unplaceable(task)
            state = task["Status"]["State"]
            if reason:
                await self._unplaceable(reason)
            elif state == "running":
                await self._read_back(task)
                return
            elif state in ENDED:
                attempts = await self._ended(task, attempts)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 2)

    async def _unplaceable(self, reason: str) -> None:
        """A task that no node can take: where it wants a GPU and one is about to be free, a moment's wait;
        where none is, the policy's answer; where it is not about GPUs, the refusal."""
        if self.gpu_wanted and NO_RESOURCES in reason:
            if (time.monotonic() < self._release_patience
                    and await self._free_gpus(self._chosen[0]) >= self.gpu_count):
                # A stopped server's GPU is free for the hub before Swarm has let go of it: a moment after its
                # service is removed, longer when its node has just come back.
                if not self._said_waiting:
                    self.log.info("%s: waiting for Swarm to let go of a GPU that no server holds", self.owner)
                    self._said_waiting = True
                await asyncio.sleep(0.5)
                return
            await self._no_gpu_free(reason)
            return
        await self.remove_object()
        if self._on_home_node():
            raise refusal("The GPU node that holds your files is not taking servers now (it is down or drained); "
                          "try again later.")
        raise refusal(f"No node can take your server now ({reason}); try again later.")

    async def _ended(self, task: dict, attempts: int) -> int:
        """A task that ended before it ran: started again where Swarm rejected it for a node change that Docker
        before 23.0 misreads (up to START_ATTEMPTS), otherwise the spawn's failure."""
        said = task["Status"].get("Err") or task["Status"].get("Message")
        if said == ENFORCER_REJECTION and attempts < START_ATTEMPTS:
            self.log.info("%s: Swarm rejected the task (%s); starting it again", self.owner, said)
            await self._new_service()
            return attempts + 1
        raise RuntimeError(f"Service {self.service_name} {task['Status']['State']}: {said}")

    async def _read_back(self, task: dict) -> None:
        """What Swarm gave the running task: its GPUs, and its node (where the user's home now is)."""
        self.assigned_gpus = assigned_gpus(task)
        self.shared.promised.pop(self.owner, None)
        node = await self.docker("inspect_node", task["NodeID"])
        self.node = node["Description"]["Hostname"]
        self._holding(self.node)
        if self.home_on_node and not self.volume_driver:
            self.home_node = node["ID"]
        self.log.info("%s: running on %s with GPUs %s", self.owner, self.node, self.assigned_gpus or "none")

    async def _free_gpus(self, kind: str | None = None) -> int:
        """Units (of ``kind``, or of any) that no running server holds, on the nodes this server may start on."""
        free = await self._free_counts()
        return sum(count for kind_here, count in free.items() if kind is None or kind_here == kind)

    async def _free_counts(self) -> Counter:
        """Units that no running server holds, on the nodes this server may start on, by kind."""
        kinds, free = {}, Counter()
        for node in serving_nodes(await self.docker("nodes")):
            if not self._on_home_node() or node["ID"] == self.home_node:
                kinds[node["ID"]] = node_kinds(node)
                for resource, _ in node_units(node):
                    free[node["ID"], kinds[node["ID"]][resource]["kind"]] += 1
        # A removed service's tasks are told to stop a moment later (swarmkit's orchestrator does it on the
        # service's deletion): until then they still look running, but no server holds their GPUs any more.
        services = {service["ID"] for service in await self.docker("services")}
        for task in await self.docker("tasks", filters={"desired-state": "running"}):
            held = task.get("NodeID") in kinds and task.get("ServiceID") in services
            for resource, _ in assigned_units(task) if held else ():
                about = kinds[task["NodeID"]].get(resource)
                if about:
                    free[task["NodeID"], about["kind"]] -= 1
        by_kind = Counter()
        for (_, kind), count in free.items():
            by_kind[kind] += max(0, count)
        return by_kind

    def _on_home_node(self) -> bool:
        return bool(self.home_on_node and self.home_node and not self.volume_driver)

    async def _no_gpu_free(self, reason: str) -> None:
        """The policy's answer where Swarm found no node with a GPU free: the refusal (the service removed), a
        place in line (the service made anew once the GPUs are taken), or the service made anew without one."""
        try:
            message = self.gpu_policy.none_free(
                self.gpu_source, " on the node that holds your files" if self._on_home_node() else "",
                kinds=self._asked_labels())
        except HTTPError:
            self.log.info("%s: no GPU free (Swarm: %s)", self.owner, reason)
            await self.remove_object()
            raise
        if self.gpu_policy.waits:
            # One that had its turn and lost the GPU to a server Swarm placed first goes back to the head.
            had_turn = self.owner in self.shared.promised
            await self.remove_object()
            self._release()
            await self._wait_for_gpu(message, front=had_turn)
        else:
            self.log.warning("%s: %s Starting it CPU-only.", self.owner, message)
            self.gpu_wanted = False
        self._release_patience = time.monotonic() + self.release_wait
        await self._new_service()

    async def _new_service(self) -> None:
        """The service made anew: removed (its name free once Swarm has let go of it), then created."""
        await self.remove_object()
        while await self.get_object() is not None:
            await asyncio.sleep(0.2)
        self.object_id = (await self.create_object())[self.object_id_key]

    async def poll(self):
        """Stopped once its task was told to stop or ended, or its node is down (the task then only looks running).
        A stopped server's service is removed here: the hub calls no stop for a server that a poll found
        stopped, and Swarm would otherwise keep counting its GPU until the node came back."""
        status = await self._task_status()
        if status is not None and self.object_id:
            await self.remove_object()
        if status is None:
            return await self._running_on()
        return status

    async def _ended_while_starting(self):
        return await self._task_status()

    async def _task_status(self):
        task = await self.get_task()
        if not task:
            return 0
        state = task["Status"]["State"]
        if task.get("DesiredState") != "running" or state in ENDED:
            return f"task {state} (desired {task.get('DesiredState')})"
        if state not in STARTING | {"running"}:
            return f"task {state}"
        if task.get("NodeID"):
            node = await self.docker("inspect_node", task["NodeID"])
            if node["Status"]["State"] != "ready":
                return f"node {node['Description']['Hostname']} is {node['Status']['State']}"
        return None

    async def remove_object(self):
        # Also after a refused spawn, whose service is gone already.
        try:
            await super().remove_object()
        except NotFound:
            self.log.debug("Service %s is gone already", self.service_name)

    async def get_ip_and_port(self):
        """The task's own address on the network (asked each time: a new task gets a new one)."""
        task = await self.get_task()
        address = task_address(task or {}, self.network_name)
        if address is None:
            raise RuntimeError(f"Service {self.service_name} has no address on {self.network_name}")
        return address, self.port
