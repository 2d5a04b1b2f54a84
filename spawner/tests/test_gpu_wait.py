"""GPUDockerSpawner waiting for a GPU, without a hub or Docker: who gets a released GPU, what the spawn page
says, and how a wait ends (timeout, a page left)."""

from __future__ import annotations

import asyncio

import pytest
from tornado.web import HTTPError

from conftest import hub_user
from gpudockerspawner import GPUDockerSpawner


def person(name: str, groups=(), **config) -> GPUDockerSpawner:
    return GPUDockerSpawner(user=hub_user(name, groups), **{"gpu_ids": ["0"], "on_exhausted": "wait", **config})


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


def test_a_released_gpu_goes_to_the_first_who_waits_and_a_newcomer_joins_the_end():
    async def scenario():
        ann, ben, cat, dan = (person(name) for name in ("ann", "ben", "cat", "dan"))
        await ann._take_gpus(True)
        waits = {s.user.name: asyncio.ensure_future(s._take_gpus(True)) for s in (ben, cat)}
        await settle()
        assert [ben.gpu_line().place(s._waiter) for s in (ben, cat)] == [1, 2]
        ann._release()  # ann's server stops
        # Dan presses Start the moment the GPU is free: he joins the end, Ben gets it.
        waits["dan"] = asyncio.ensure_future(dan._take_gpus(True))
        await asyncio.wait_for(waits["ben"], 1)
        await settle()
        assert ben.assigned_gpus == ["0"] and not cat.assigned_gpus and not dan.assigned_gpus
        assert [cat.gpu_line().place(s._waiter) for s in (cat, dan)] == [1, 2]
        ben._release()
        await asyncio.wait_for(waits["cat"], 1)
        assert cat.assigned_gpus == ["0"] and dan.gpu_line().place(dan._waiter) == 1
        waits["dan"].cancel()

    asyncio.run(scenario())


def test_a_wait_ends_at_gpu_wait_timeout_with_a_message_and_the_line_forgets_it():
    async def scenario():
        ann, ben = person("ann"), person("ben", gpu_wait_timeout=0.2)
        await ann._take_gpus(True)
        with pytest.raises(HTTPError) as refused:
            await ben._take_gpus(True)
        assert refused.value.jupyterhub_message == ("No GPU came free for you within 0.2 seconds; try again later, "
                                                    "or start a CPU-only server.")
        assert len(ben.gpu_line()) == 0 and ben._waiter is None

    asyncio.run(scenario())


def test_the_spawn_page_shows_the_place_and_the_rule_that_holds_it_back_and_a_page_left_ends_the_wait():
    rules = {"students": {"max_gpus": 1}}

    async def scenario():
        sam = person("sam", ["students"], gpu_ids=["0", "1"], gpu_groups=rules)
        sue = person("sue", ["students"], gpu_ids=["0", "1"], gpu_groups=rules, gpu_wait_unwatched=0.1)
        await sam._take_gpus(True)
        wait = asyncio.ensure_future(sue._take_gpus(True))
        await settle()
        page = sue.progress()
        event = await page.__anext__()
        # One GPU is free, but the students hold the one their rule allows: the page says so.
        assert event == {"progress": 5, "message": "You are 1st in line for a GPU. Your group's GPUs are all in use: "
                                                   "students holds 1 of its 1 (group students: 1 GPU each, at most "
                                                   "1 together)."}
        await page.aclose()  # the page is closed
        with pytest.raises(HTTPError) as left:
            await asyncio.wait_for(wait, 2)
        assert left.value.jupyterhub_message == ("You left the page while you waited for a GPU, and so left the "
                                                 "line; start again to wait anew.")
        assert not sue.assigned_gpus and sue.ledger().by_group()["students"] == 1

    asyncio.run(scenario())


def test_a_page_reloaded_in_time_keeps_the_place():
    async def scenario():
        ann, ben = person("ann"), person("ben", gpu_wait_unwatched=0.2)
        await ann._take_gpus(True)
        wait = asyncio.ensure_future(ben._take_gpus(True))
        await settle()
        first = ben.progress()
        await first.__anext__()
        await first.aclose()
        again = ben.progress()  # the reload, within gpu_wait_unwatched
        await again.__anext__()
        await asyncio.sleep(0.4)
        assert ben.gpu_line().place(ben._waiter) == 1
        ann._release()
        await asyncio.wait_for(wait, 1)
        assert ben.assigned_gpus == ["0"]
        await again.aclose()

    asyncio.run(scenario())


def test_times_read_the_same_everywhere():
    from gpudockerspawner.words import duration, ordinal

    assert [duration(s) for s in (0.2, 1, 45, 90, 1800, 7200, 7260 + 60)] == [
        "0.2 seconds", "1 second", "45 seconds", "90 seconds", "30 minutes", "2 hours", "2 hours 2 minutes"]
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd"]
