"""GPUDockerSpawner in a real JupyterHub on the real Docker engine, whose device requests run through
the stand-in NVIDIA hook: what each container holds is read from Docker and from inside the container."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.images import ensure_singleuser_image
from testbed.localhub import LocalHub
from testbed.wait import until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def singleuser_image(engine):
    return ensure_singleuser_image(engine)


@pytest.fixture
def make_hub(local_hubs):
    return local_hubs


def spawn(hub: LocalHub, user: str, **options) -> None:
    hub.api.ensure_user(user)
    response = hub.api.api("POST", f"/users/{user}/server", json=options or None)
    assert response.status_code in (201, 202), response.text
    hub.api.start_server(user)


def refused_spawn(hub: LocalHub, user: str, **options) -> str:
    """Start a server that must fail; return what the hub told the user."""
    hub.api.ensure_user(user)
    response = hub.api.api("POST", f"/users/{user}/server", json=options or None)
    if response.status_code >= 400:
        return response.text
    def failed() -> str | None:
        events = hub.api.get(f"/hub/api/users/{user}/server/progress").text
        return events if '"failed": true' in events else None

    return until(failed, 60, f"the spawn of {user} failing", interval=0.5)


def held(hub: LocalHub, users) -> dict[str, list[str]]:
    return {user: hub.gpus_of(user)["device_requests"] for user in users}


def test_three_gpus_four_users_exclusive_then_freed(make_hub):
    hub = make_hub(gpu_ids=["0", "1", "2"])
    for user in ("ann", "ben", "cat"):
        spawn(hub, user)
    for user in ("ann", "ben", "cat"):
        seen = hub.gpus_of(user)
        assert len(seen["device_requests"]) == 1
        assert seen["visible"] == seen["label"] == seen["device_requests"][0]
    assert sorted(gpu for gpus in held(hub, ["ann", "ben", "cat"]).values() for gpu in gpus) == ["0", "1", "2"]

    message = refused_spawn(hub, "dan")
    assert "All 3 GPUs are in use" in message

    freed = hub.gpus_of("ben")["device_requests"]
    hub.api.stop_server("ben")
    spawn(hub, "dan")
    assert hub.gpus_of("dan")["device_requests"] == freed


def test_exhausted_pool_falls_back_to_cpu_only(make_hub):
    hub = make_hub(gpu_ids="0", on_exhausted="cpu")
    spawn(hub, "ann")
    spawn(hub, "ben")
    assert hub.gpus_of("ann")["device_requests"] == ["0"]
    assert hub.gpus_of("ben") == {"device_requests": [], "visible": "void", "label": ""}


def test_hub_restart_keeps_every_assignment_and_hands_out_no_taken_gpu(make_hub):
    hub = make_hub(gpu_ids="0,1,2")
    spawn(hub, "ann")
    spawn(hub, "ben")
    before = held(hub, ["ann", "ben"])
    containers = {c.name: c.id for c in hub.containers()}
    assert hub.assignments()["gpus"] == {gpus[0]: [f"{user}/"] for user, gpus in before.items()}

    hub.stop()
    hub.start()

    assert {c.name: c.id for c in hub.containers()} == containers
    assert held(hub, ["ann", "ben"]) == before
    spawn(hub, "cat")
    (free,) = {"0", "1", "2"} - {gpus[0] for gpus in before.values()}
    assert hub.gpus_of("cat")["device_requests"] == [free]
    assert "All 3 GPUs are in use" in refused_spawn(hub, "dan")


def test_ten_concurrent_spawns_never_double_book(make_hub):
    hub = make_hub(gpu_ids=["0", "1", "2", "3"], on_exhausted="cpu")
    users = [f"user{i}" for i in range(10)]
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda user: spawn(hub, user), users))
    holdings = held(hub, users)
    given = [gpu for gpus in holdings.values() for gpu in gpus]
    assert sorted(given) == ["0", "1", "2", "3"]
    assert sum(1 for user in users if hub.gpus_of(user)["visible"] == "void") == 6


def test_a_line_starts_a_few_at_a_time_and_tells_the_waiting_where_they_stand(make_hub):
    # The spawn requests answer at once (no slow_spawn_timeout), as a class's browsers each send their own.
    hub = make_hub("c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n", gpu_ids=["0"],
                   on_exhausted="cpu", spawns_at_once=2)
    users = [f"line{i}" for i in range(6)]
    for user in users:
        hub.api.ensure_user(user)
        response = hub.api.api("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202), response.text
    # The last one in waits behind the others, and its spawn page's event stream says so.
    with hub.api.session.get(f"{hub.api.url}/hub/api/users/{users[-1]}/server/progress", stream=True,
                             timeout=300) as events:
        messages = [line for line in events.iter_lines(decode_unicode=True) if line.startswith("data:")]
    assert any("Waiting in line: " in message and "of other users start before yours" in message
               for message in messages), messages
    for user in users:
        hub.api.start_server(user)  # all of them become ready
    assert "Giving up" not in hub.log()


@pytest.mark.parametrize("remove", [True, False], ids=["removed-on-stop", "kept-on-stop"])
def test_cpu_only_server_after_a_gpu_server_sees_no_gpu(make_hub, remove):
    hub = make_hub(gpu_ids=["0"], remove=remove)
    spawn(hub, "ann")
    assert hub.gpus_of("ann")["device_requests"] == ["0"]
    gpu_container = hub.container_of("ann").id
    hub.api.stop_server("ann")
    spawn(hub, "ann", gpu="cpu")
    assert hub.gpus_of("ann") == {"device_requests": [], "visible": "void", "label": ""}
    assert hub.container_of("ann").id != gpu_container
    spawn(hub, "ben")  # the GPU ann gave back
    assert hub.gpus_of("ben")["device_requests"] == ["0"]


def test_failed_start_gives_the_gpu_back(make_hub):
    # Docker refuses to create ann's container (a memory limit under its minimum), after her GPU was reserved.
    broken = "c.GPUDockerSpawner.mem_limit = lambda spawner: '1K' if spawner.user.name == 'ann' else None\n"
    hub = make_hub(extra_config=broken, gpu_ids=["0"])
    refused_spawn(hub, "ann")
    spawn(hub, "ben")
    assert hub.gpus_of("ben")["device_requests"] == ["0"]


def test_gpu_groups_limit_who_gets_a_gpu(make_hub):
    hub = make_hub(gpu_ids=["0", "1"], gpu_groups=["gpu-users"])
    hub.api.ensure_user("ann")
    hub.api.ensure_user("ben")
    assert hub.api.api("POST", "/groups/gpu-users", json={"users": ["ann"]}).status_code in (201, 409)
    spawn(hub, "ann")
    spawn(hub, "ben")
    assert hub.gpus_of("ann")["device_requests"] == ["0"]
    assert hub.gpus_of("ben")["visible"] == "void"


def test_an_image_made_elsewhere_runs_as_its_own_user_and_one_that_would_run_as_root_is_refused(
        make_hub, engine, singleuser_image):
    # Made elsewhere, as an image from a registry would be: one names a user (as the Jupyter Docker Stacks images
    # name jovyan), the other root.
    # Root under other spellings too: "00", and a name of its own that the image's passwd gives uid 0.
    own_user, as_root = f"{singleuser_image}-user1000", f"{singleuser_image}-root"
    zeros, alias = f"{singleuser_image}-user00", f"{singleuser_image}-toor"
    for tag, lines in ((own_user, "USER 1000"), (as_root, "USER root"), (zeros, "USER 00"),
                       (alias, "USER root\nRUN echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd\nUSER toor")):
        engine.images.build(fileobj=io.BytesIO(f"FROM {singleuser_image}\n{lines}\n".encode()), tag=tag, rm=True)
    roots = {"root": as_root, "zeros": zeros, "alias": alias}
    hub = make_hub(own_user_images=[own_user, *roots.values()], allowed_images={"own": own_user, **roots})
    spawn(hub, "ann", image="own")
    container = hub.container_of("ann")
    assert container.attrs["Config"]["User"] == "1000"
    assert container.exec_run(["grep", "^Uid:", "/proc/1/status"]).output.decode().split()[1:] == ["1000"] * 4
    for person, (profile, image) in zip(("ben", "cat", "dan"), roots.items()):
        told = refused_spawn(hub, person, image=profile)
        assert f"The image {image} runs its server as root" in told, told
        assert not engine.containers.list(all=True, filters={"name": f"{hub.prefix}-{person}"})
    assert not engine.containers.list(all=True, filters={"ancestor": alias}), "the passwd reader's container is gone"
