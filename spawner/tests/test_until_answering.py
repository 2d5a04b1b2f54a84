"""After the container starts, GPUDockerSpawner waits for the server itself, checking every ready_poll_interval,
so that the hub's own check (which backs off up to 5 s apart) finds it up at once; a server that dies in its boot is
told at once. A real HTTP server on loopback plays the user's server; no engine needed."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from conftest import hub_user
from gpudockerspawner.spawner import GPUDockerSpawner


class Status(RequestHandler):
    def get(self):
        self.set_status(302)  # the single-user server's answer to its base URL: a redirect, which counts as up
        self.set_header("Location", "/user/ann/lab")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def spawner():
    user = hub_user("ann")
    made = GPUDockerSpawner(user=user, http_timeout=20)
    made.server = SimpleNamespace(proto="http", base_url="/user/ann/")
    return made


def test_start_returns_as_soon_as_the_server_answers(spawner):
    port = free_port()

    async def scenario() -> float:
        async def listen_later():
            await asyncio.sleep(0.6)
            HTTPServer(Application([(r"/user/ann/", Status)])).listen(port, "127.0.0.1")

        asyncio.ensure_future(listen_later())
        began = time.monotonic()
        await spawner._until_answering("127.0.0.1", port)
        return time.monotonic() - began

    waited = asyncio.run(scenario())
    # Listening at 0.6 s, seen within one interval (0.1 s) and a request; the hub's back-off would see it at a check
    # 0.2 + 0.4 (+ jitter) or 0.2 + 0.4 + 0.8 s apart.
    assert 0.6 <= waited < 0.9, waited


def test_a_server_that_died_in_its_boot_is_told_within_seconds(spawner, monkeypatch):
    async def died():
        return 1

    monkeypatch.setattr(spawner, "_ended_while_starting", died)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"Your server stopped \(1\) 1 s into its start, before it answered"):
        asyncio.run(spawner._until_answering("127.0.0.1", free_port()))
    assert time.monotonic() - began < 3  # not http_timeout's 20 s


def test_with_no_interval_start_leaves_the_wait_to_the_hub(spawner):
    spawner.ready_poll_interval = 0
    began = time.monotonic()
    asyncio.run(spawner._until_answering("127.0.0.1", free_port()))  # nothing listens, and nobody waits for it
    assert time.monotonic() - began < 0.1


def test_a_spawner_with_no_server_record_starts_as_dockerspawner_does(monkeypatch):
    """DockerSpawner's own tests drive a spawner outside the hub, with no server record: start() returns the
    container's address, and the caller checks the server itself (DockerSpawner 14's test_post_start)."""
    from dockerspawner import DockerSpawner

    async def container_started(self):
        return "127.0.0.1", 8888

    monkeypatch.setattr(DockerSpawner, "start", container_started)
    made = GPUDockerSpawner(user=hub_user("ann"), remove=True)
    assert made.server is None
    assert asyncio.run(made.start()) == ("127.0.0.1", 8888)
