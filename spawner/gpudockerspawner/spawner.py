"""GPUDockerSpawner: DockerSpawner with GPUs handed out from a pool through Docker device requests."""

from __future__ import annotations

from dockerspawner import DockerSpawner
from traitlets import Enum, Int, List, Unicode, Union, default, validate

from gpudockerspawner.pool import GPUPool, parse_gpu_ids


class GPUDockerSpawner(DockerSpawner):
    """Give each user container ``gpus_per_user`` GPUs from ``gpu_ids``, or none."""

    gpu_ids = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        config=True,
        help="""GPU device indexes or UUIDs (GPU-..., MIG-...) to hand out.

        A list, a comma-separated string ("0,1,2"), or the legacy one-character-per-GPU
        string ("012"). Empty (the default): every container is CPU-only.
        Duplicates and malformed ids are refused when the hub starts.
        """,
    )
    gpus_per_user = Int(1, config=True, help="How many GPUs each user container gets (default 1).")
    users_per_gpu = Int(
        1,
        config=True,
        help="How many user containers may share one GPU: 1 (the default) is exclusive; "
        "with more, the least-loaded GPU is chosen first.",
    )
    on_exhausted = Enum(
        ["refuse", "cpu"],
        default_value="refuse",
        config=True,
        help="When no GPU is free: 'refuse' the spawn with a message to the user, "
        "or start a CPU-only container ('cpu').",
    )

    assigned_gpus = List(Unicode(), help="GPUs the current container holds; persisted in the spawner state.")

    _pools: dict[tuple, GPUPool] = {}

    @validate("gpu_ids")
    def _valid_gpu_ids(self, proposal):
        return parse_gpu_ids(proposal.value)

    @validate("gpus_per_user", "users_per_gpu")
    def _at_least_one(self, proposal):
        if proposal.value < 1:
            raise ValueError(f"{proposal.trait.name} must be at least 1, not {proposal.value}")
        return proposal.value

    @default("extra_host_config")
    def _gpu_host_config(self):
        return _device_requests

    @property
    def pool(self) -> GPUPool:
        """The pool shared by every spawner of this hub process with the same configuration."""
        key = (tuple(self.gpu_ids), self.users_per_gpu)
        if key not in self._pools:
            self._pools[key] = GPUPool(self.gpu_ids, self.users_per_gpu)
        return self._pools[key]

    @property
    def _owner(self) -> str:
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    def load_state(self, state):
        super().load_state(state)
        self.assigned_gpus = list(state.get("gpus", []))
        if self.assigned_gpus:
            refused = self.pool.claim(self._owner, self.assigned_gpus)
            if refused:
                self.log.warning("%s: GPUs %s from the hub database are not in the pool", self._owner, refused)

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
        visible = ",".join(self.assigned_gpus)
        env["NVIDIA_VISIBLE_DEVICES"] = visible or "void"
        if visible:
            env["CUDA_VISIBLE_DEVICES"] = visible
        return env

    async def start(self):
        self._reserve()
        try:
            return await super().start()
        except BaseException:
            self._release()
            raise

    async def poll(self):
        status = await super().poll()
        if status is not None:
            self._release()
        return status

    def _reserve(self) -> None:
        # No await between the pool check and the reservation: atomic in the hub's event loop.
        self._release()
        if not self.gpu_ids:
            return
        chosen = self.pool.allocate(self._owner, self.gpus_per_user)
        if chosen is None:
            message = (
                f"all {len(self.gpu_ids)} GPUs are in use "
                f"({self.users_per_gpu} user(s) per GPU); try again later or ask an admin"
            )
            if self.on_exhausted == "refuse":
                raise _user_error(message)
            self.log.warning("%s: %s; starting CPU-only", self._owner, message)
            return
        self.assigned_gpus = chosen

    def _release(self) -> None:
        if self.assigned_gpus:
            self.pool.release(self._owner)
            self.assigned_gpus = []


def _device_requests(spawner: GPUDockerSpawner) -> dict:
    if not spawner.assigned_gpus:
        return {}
    return {"device_requests": [{"driver": "", "device_ids": list(spawner.assigned_gpus), "capabilities": [["gpu"]]}]}


def _user_error(message: str) -> Exception:
    """An error JupyterHub shows to the user as it is, rather than as an internal error."""
    from tornado.web import HTTPError

    error = HTTPError(503, log_message=message)
    error.jupyterhub_message = message
    return error

