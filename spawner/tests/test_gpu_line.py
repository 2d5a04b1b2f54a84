"""The line for GPUs on its own: first come first served, capped groups passed over, nobody's place lost."""

from __future__ import annotations

import asyncio

import pytest

from gpudockerspawner.gpu_line import CAPPED, TAKEN, TOO_FEW, GPULine


class Pool:
    """Free GPUs (``free`` of no kind in particular, ``by_kind`` of named kinds), and groups at their cap: what a
    waiter's attempt to take finds."""

    def __init__(self, free: int, **by_kind: int):
        self.free = free
        self.by_kind = dict(by_kind)
        self.capped: set[str] = set()
        self.taken: list[str] = []

    def taker(self, owner: str, count: int = 1, group: str = "", kinds: tuple[str, ...] = ()):
        async def take(avoid: frozenset[str] = frozenset()) -> str:
            if group in self.capped:
                return CAPPED
            for kind in kinds or ("", *self.by_kind):
                if kind in avoid:
                    continue
                free = self.free if kind == "" else self.by_kind[kind]
                if free >= count:
                    if kind == "":
                        self.free -= count
                    else:
                        self.by_kind[kind] -= count
                    self.taken.append(owner if not kinds else f"{owner}:{kind}")
                    return TAKEN
            return TOO_FEW

        return take


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_released_gpu_goes_to_the_first_in_line_and_a_newcomer_joins_the_end():
    async def scenario():
        pool, line = Pool(free=0), GPULine(tick=60)
        cat = line.join("cat", pool.taker("cat"))
        dan = line.join("dan", pool.taker("dan"))
        waits = [asyncio.ensure_future(line.wait(w, 60)) for w in (cat, dan)]
        await settle()
        assert (line.place(cat), line.place(dan), pool.taken) == (1, 2, [])
        pool.free += 1
        line.released()
        await settle()
        assert pool.taken == ["cat"] and waits[0].done() and line.place(dan) == 1
        # A newcomer while dan waits: behind him, even with a GPU free the moment it comes.
        eve = line.join("eve", pool.taker("eve"))
        assert line.place(eve) == 2
        pool.free += 2
        line.released()
        await settle()
        assert pool.taken == ["cat", "dan", "eve"] and len(line) == 0
        await asyncio.gather(*waits)

    asyncio.run(scenario())


def test_a_capped_group_is_passed_over_but_one_needing_more_than_is_free_holds_those_behind():
    async def scenario():
        pool, line = Pool(free=0), GPULine(tick=60)
        student = line.join("student", pool.taker("student", group="students"))
        big = line.join("big", pool.taker("big", count=2))
        small = line.join("small", pool.taker("small"))
        pool.capped.add("students")
        pool.free = 1
        line.released()
        await settle()
        # The student's group holds all it may: no GPU would help it. The one wanting two waits for two, and
        # the one wanting one behind it does not take the GPU it waits for.
        assert pool.taken == [] and [line.place(w) for w in (student, big, small)] == [1, 2, 3]
        pool.free = 3
        line.released()
        await settle()
        assert pool.taken == ["big", "small"] and line.place(student) == 1
        pool.capped.clear()
        pool.free = 1
        line.released()
        await settle()
        assert pool.taken == ["big", "small", "student"]

    asyncio.run(scenario())


def test_leaving_costs_nobody_their_place_and_a_wait_ends_at_its_timeout():
    async def scenario():
        pool, line = Pool(free=0), GPULine(tick=60)
        ann = line.join("ann", pool.taker("ann"))
        ben = line.join("ben", pool.taker("ben"))
        cat = line.join("cat", pool.taker("cat"))
        ann_wait = asyncio.ensure_future(line.wait(ann, 60))
        ben_wait = asyncio.ensure_future(line.wait(ben, 0.2))
        await settle()
        ann_wait.cancel()  # Cancel on the spawn page
        await settle()
        assert line.place(ben) == 1 and line.place(cat) == 2 and line.place(ann) is None
        with pytest.raises(asyncio.TimeoutError):
            await ben_wait
        assert line.place(cat) == 1 and len(line) == 1
        # Sent away with a reason (the page left): the wait ends with it.
        cat_wait = asyncio.ensure_future(line.wait(cat, 60))
        await settle()
        line.leave(cat, RuntimeError("left the page"))
        with pytest.raises(RuntimeError, match="left the page"):
            await cat_wait
        assert len(line) == 0 and pool.taken == []

    asyncio.run(scenario())


def test_one_that_lost_its_turn_to_a_race_goes_back_to_the_head():
    async def scenario():
        pool, line = Pool(free=0), GPULine(tick=60)
        line.join("ben", pool.taker("ben"))
        ann = line.join("ann", pool.taker("ann"), front=True)
        assert line.place(ann) == 1

    asyncio.run(scenario())


def test_an_attempt_that_fails_ends_that_wait_only():
    async def scenario():
        pool, line = Pool(free=1), GPULine(tick=60)

        async def broken(avoid=frozenset()) -> str:
            raise RuntimeError("Docker is away")

        first = line.join("first", broken)
        second = line.join("second", pool.taker("second"))
        waits = [asyncio.ensure_future(line.wait(w, 60)) for w in (first, second)]
        await settle()
        with pytest.raises(RuntimeError, match="Docker is away"):
            await waits[0]
        await waits[1]
        assert pool.taken == ["second"]

    asyncio.run(scenario())


def test_the_line_asks_again_every_tick_for_gpus_that_come_back_unseen():
    async def scenario():
        pool, line = Pool(free=0), GPULine(tick=0.05)
        ann = line.join("ann", pool.taker("ann"))
        wait = asyncio.ensure_future(line.wait(ann, 5))
        await asyncio.sleep(0.1)
        pool.free = 1  # a node back: nobody calls released()
        await asyncio.wait_for(wait, 1)
        assert pool.taken == ["ann"]

    asyncio.run(scenario())


def test_one_waiting_for_a_kind_holds_back_only_that_kind():
    """Ann waits for an A100 and Ben for any GPU behind her; a 4090 comes free: Ben takes it, not Ann's A100 when
    that comes; Cat behind them, waiting for a slice, takes a slice though Ann waits before her."""

    async def scenario():
        pool, line = Pool(0, A100=0, RTX4090=0, MIG=0), GPULine(tick=60)
        ann = line.join("ann", pool.taker("ann", kinds=("A100",)), kinds=("A100",))
        ben = line.join("ben", pool.taker("ben"))
        cat = line.join("cat", pool.taker("cat", kinds=("MIG",)), kinds=("MIG",))
        waits = [asyncio.ensure_future(line.wait(w, 60)) for w in (ann, ben, cat)]
        await settle()
        pool.by_kind["RTX4090"] = 1
        line.released()
        await settle()
        assert pool.taken == ["ben"] and line.place(ann) == 1 and line.place(cat) == 2
        pool.by_kind.update(A100=1, MIG=1)
        line.released()
        await settle()
        assert pool.taken == ["ben", "ann:A100", "cat:MIG"] and len(line) == 0
        await asyncio.gather(*waits)

    asyncio.run(scenario())


def test_one_waiting_for_any_gpu_holds_back_every_kind():
    async def scenario():
        pool, line = Pool(0, A100=0), GPULine(tick=60)
        ann = line.join("ann", pool.taker("ann", count=2))
        ben = line.join("ben", pool.taker("ben", kinds=("A100",)), kinds=("A100",))
        waits = [asyncio.ensure_future(line.wait(w, 60)) for w in (ann, ben)]
        await settle()
        pool.by_kind["A100"] = 1  # too few for Ann's two, and Ben is behind her
        line.released()
        await settle()
        assert pool.taken == [] and line.place(ben) == 2
        for wait in waits:
            wait.cancel()

    asyncio.run(scenario())
