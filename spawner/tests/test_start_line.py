"""The start line: never more than its capacity at once, first come first served, and nobody lost when
someone leaves the line early."""

from __future__ import annotations

import asyncio

import pytest

from gpudockerspawner.start_line import StartLine


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_capacity_is_never_exceeded_and_turns_come_in_arrival_order():
    async def scenario():
        line = StartLine(2)
        inside, most, order = 0, 0, []

        async def start(name: int):
            nonlocal inside, most
            async with line.turn():
                inside += 1
                most = max(most, inside)
                order.append(name)
                await asyncio.sleep(0.01 * (3 - name % 3))
                inside -= 1

        await asyncio.gather(*(start(i) for i in range(9)))
        return most, order, line.starting, line.waiting

    most, order, starting, waiting = run(scenario())
    assert most == 2
    assert order == list(range(9))
    assert (starting, waiting) == (0, 0)


def test_the_waiting_know_how_many_are_ahead():
    async def scenario():
        line = StartLine(1)
        turns = []
        release = asyncio.Event()

        async def start():
            async with line.turn(on_wait=turns.append):
                await release.wait()

        tasks = [asyncio.create_task(start()) for _ in range(4)]
        await asyncio.sleep(0)
        ahead = [line.ahead_of(turn) for turn in turns]
        release.set()
        await asyncio.gather(*tasks)
        return ahead

    assert run(scenario()) == [0, 1, 2]


@pytest.mark.parametrize("when", ["waiting", "handed-over"])
def test_someone_leaving_the_line_passes_their_place_on(when):
    async def scenario():
        line = StartLine(1)
        first_in = asyncio.Event()
        release = asyncio.Event()
        done, tasks = [], {}

        async def start(name: str):
            async with line.turn():
                if name == "first":
                    first_in.set()
                    await release.wait()
                done.append(name)
            if name == "first" and when == "handed-over":
                # The place was just handed to the quitter, who gives up before it could take it.
                tasks["quitter"].cancel()

        tasks["first"] = asyncio.create_task(start("first"))
        await first_in.wait()
        tasks["quitter"] = asyncio.create_task(start("quitter"))
        tasks["last"] = asyncio.create_task(start("last"))
        await asyncio.sleep(0)
        if when == "waiting":
            tasks["quitter"].cancel()
        release.set()
        await asyncio.gather(tasks["first"], tasks["last"])
        with pytest.raises(asyncio.CancelledError):
            await tasks["quitter"]
        return done, line.starting, line.waiting

    done, starting, waiting = run(scenario())
    assert done == ["first", "last"]
    assert (starting, waiting) == (0, 0)
