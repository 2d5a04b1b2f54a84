"""Random sequences of spawn, stop, failed start, vanished container, hub restart and concurrent spawns
keep the pool's invariants: no GPU over its user limit, no GPU lost, nothing assigned twice when exclusive."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gpudockerspawner.pool import GPUPool, disagreement, rebuild

OWNERS = st.sampled_from([f"user{i}/" for i in range(12)])
KINDS = st.sampled_from(["A100", "RTX 4090", "A100 MIG 1g.10gb"])


class HubLife(RuleBasedStateMachine):
    """A model hub: the pool (in-process table), the spawner states in the database, and the labels of
    running containers, driven the way GPUDockerSpawner drives them."""

    @initialize(gpus=st.integers(1, 6), users_per_gpu=st.integers(1, 3), gpus_per_user=st.integers(1, 2),
                uuids=st.booleans(), kinds=st.lists(KINDS, min_size=6, max_size=6))
    def start_hub(self, gpus, users_per_gpu, gpus_per_user, uuids, kinds):
        self.ids = [f"GPU-{i:08d}-0000-0000-0000-000000000000" if uuids else str(i) for i in range(gpus)]
        self.users_per_gpu, self.gpus_per_user = users_per_gpu, gpus_per_user
        # Units of up to three kinds (whole GPUs of two models, MIG devices of one), in any mix.
        self.kinds = dict(zip(self.ids, kinds))
        self.pool = GPUPool(self.ids, users_per_gpu, self.kinds)
        self.database: dict[str, list[str]] = {}
        self.running: dict[str, list[str]] = {}  # container labels
        self.spawning: dict[str, list[str]] = {}  # reserved, container not started yet

    def busy(self, owner):
        return owner in self.running or owner in self.spawning

    @rule(owner=OWNERS, wanted=st.lists(KINDS, max_size=2, unique=True))
    def begin_spawn(self, owner, wanted):
        """The synchronous part of start(): several can be in flight before any finishes. ``wanted``: the kinds the
        server asks for, in order of preference (none: any)."""
        if self.busy(owner):
            return
        chosen = self.pool.allocate(owner, self.gpus_per_user, kinds=wanted)
        if chosen is None:
            # Refused only when no kind asked for has as many GPUs with room as one server needs.
            with_room = [gpu for gpu, owners in self.pool.table().items() if len(owners) < self.users_per_gpu]
            for kind in wanted or set(self.kinds.values()):
                assert sum(1 for gpu in with_room if self.kinds[gpu] == kind) < self.gpus_per_user
            return  # refused, or started CPU-only: no GPU either way
        # One kind per server, and one it asked for.
        assert len({self.kinds[gpu] for gpu in chosen}) == 1
        assert not wanted or self.kinds[chosen[0]] in wanted
        self.spawning[owner] = chosen

    @precondition(lambda self: self.spawning)
    @rule(data=st.data(), succeeds=st.booleans())
    def finish_spawn(self, data, succeeds):
        owner = data.draw(st.sampled_from(sorted(self.spawning)))
        chosen = self.spawning.pop(owner)
        if succeeds:
            self.running[owner] = chosen
            self.database[owner] = chosen
        else:
            self.pool.release(owner)  # start failed: the reservation is given back

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def stop(self, data):
        owner = data.draw(st.sampled_from(sorted(self.running)))
        del self.running[owner], self.database[owner]
        self.pool.release(owner)

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def container_vanishes(self, data):
        """Removed behind the hub's back; the next poll finds it gone and releases its GPUs."""
        owner = data.draw(st.sampled_from(sorted(self.running)))
        del self.running[owner]
        self.pool.release(owner)
        del self.database[owner]

    @rule(crash=st.booleans())
    def hub_restart(self, crash):
        """A new hub process: spawns in flight die with it; the pool is rebuilt from running labels."""
        self.spawning.clear()
        if crash and self.running:
            # The hub died after a container started but before its state reached the database.
            last = sorted(self.running)[-1]
            self.database.pop(last, None)
        self.pool, problems = rebuild(self.ids, self.users_per_gpu, self.running, self.kinds)
        assert problems == []
        for owner, recorded in list(self.database.items()):
            message = disagreement(self.pool, owner, recorded)
            assert message is None, message
        for owner in self.running:
            self.database[owner] = self.pool.held_by(owner)

    @invariant()
    def no_gpu_over_its_user_limit(self):
        for gpu, owners in self.pool.table().items():
            assert len(owners) <= self.users_per_gpu, (gpu, owners)
            assert len(set(owners)) == len(owners)

    @invariant()
    def nothing_assigned_twice_when_exclusive(self):
        if self.users_per_gpu == 1:
            held = [gpu for gpus in self.pool.owners().values() for gpu in gpus]
            assert len(held) == len(set(held))

    @invariant()
    def no_gpu_lost(self):
        expected = {**self.running, **self.spawning}
        assert self.pool.owners() == expected
        held = sum(len(gpus) for gpus in expected.values())
        assert self.pool.free_slots() == self.users_per_gpu * len(self.ids) - held
        assert all(len(gpus) == self.gpus_per_user for gpus in expected.values())

    @invariant()
    def database_labels_and_table_agree(self):
        for owner, gpus in self.running.items():
            assert self.database.get(owner, gpus) == gpus == self.pool.held_by(owner)


TestPoolUnderRandomHubLife = HubLife.TestCase
# 1,000 random hub lives of up to 40 steps each: every kind of step in every order many times over (a run of
# 2,000 found nothing more), in half a minute.
TestPoolUnderRandomHubLife.settings = settings(max_examples=1000, stateful_step_count=40, deadline=None)
