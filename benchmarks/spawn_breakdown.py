"""Where a server's start goes, from "Start" to a page through the proxy, now beside as it was, in one run.

    .venv/bin/python -m benchmarks.spawn_breakdown [--rounds 8] [--at-once 10]

Two real hubs on this machine (testbed/localhub.py: JupyterHub, GPUDockerSpawner, the deploy's
configurable-http-proxy), spawning on the test bed's engine with the deploy's own single-user image and the settings
the deploy gives it (started as root for the entry point, which drops to jovyan):

- *before*: that image with its start-up waste put back (rfc3987-syntax, jupyter-lsp's scan and JupyterHub's
  files as released, as benchmarks.server_boot builds it) and the hub's own wait for the server
  (``ready_poll_interval = 0``: JupyterHub's checks back off up to 5 s apart);
- *now*: the image as built, and the spawner's own check every 0.1 s.

Each round starts one server on each hub in turn through the REST API and times, from the request:
``hub`` (to Docker's create event: the hub's handling and the spawner's choices), ``create`` (to the start event),
``entrypoint+imports`` (to Jupyter Server's first log line), ``boot`` (to its "is running at" line),
``hub notices`` (to the hub's API saying ready), ``route+page`` (to /user/<name>/api/status answering through the
proxy), and the CPU time the server's container used until then (Docker's stats). Then ``--at-once`` servers
started together on each hub, spawn to page, each waiting on the hub's progress events as the spawn page does.
Where the test bed's GPU profile image was built (a test run builds ``jupyterhub-gpu/profile-gpu-cuda``), its start
with a stand-in GPU is timed the same way. Last, each image's size and largest layers, and what the default PyTorch
profile downloads (PyPI's own figures for its wheels). Needs the test bed's engine and images: run bin/test once
first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker

from benchmarks.server_boot import baseline_of, newest_image, p95
from testbed import engine as testbed_engine
from testbed.localhub import LocalHub
from testbed.nvidia import FAKE_GPUS

PHASES = ["hub", "create", "entrypoint+imports", "boot", "hub notices", "route+page"]
# As the deploy starts the built images (roles/services/files/jupyterhub_config.py): as root, for the entry point,
# which drops to jovyan; every capability but those it needs to drop.
DEPLOYED = {
    "extra_create_kwargs": {"user": "root"},
    "extra_host_config": {"cap_drop": ["ALL"], "cap_add": ["SETUID", "SETGID"],
                          "security_opt": ["no-new-privileges"], "cpu_shares": 256},
    "environment": {"GRANT_SUDO": "no"},
    "http_timeout": 120,
    # The deploy's start line: twice the host's CPUs start at once (roles/services).
    "spawns_at_once": 2 * (os.cpu_count() or 1),
}


def _stamp(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds, as Unix seconds."""
    day, fraction = re.fullmatch(r"(\S+?)(?:\.(\d+))?Z", text).groups()
    return datetime.fromisoformat(day + "+00:00").timestamp() + float(f"0.{fraction or 0}")


def spawn(hub: LocalHub, user: str) -> dict[str, float]:
    """One start, timed phase by phase (seconds), then the server stopped."""
    api = hub.api
    api.ensure_user(user)
    requested = time.time()
    response = api.api("POST", f"/users/{user}/server", json={})
    assert response.status_code in (201, 202), response.text
    while not (api.servers(user).get("") or {}).get("ready"):
        time.sleep(0.02)
    ready = time.time()
    while api.get(f"/user/{user}/api/status").status_code != 200:
        time.sleep(0.02)
    page = time.time()
    container = hub.container_of(user)
    # The CPU the server's container used until then (Docker's own account, one sample): what a class's
    # starts share on a small host.
    cpu = container.stats(stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
    events = {event["status"]: event["timeNano"] / 1e9 for event in hub.engine.events(
        since=int(requested) - 1, until=int(page) + 1, decode=True,
        filters={"container": container.name, "event": ["create", "start"]})}
    lines = container.logs(timestamps=True).decode(errors="replace").splitlines()
    first = _stamp(lines[0].split(" ", 1)[0])
    running = _stamp(next(line for line in lines if "is running at" in line).split(" ", 1)[0])
    api.stop_server(user)
    marks = [requested, events["create"], events["start"], first, running, ready, page]
    return ({phase: end - start for phase, start, end in zip(PHASES, marks, marks[1:])}
            | {"total": page - requested, "server CPU": cpu})


def at_once(hub: LocalHub, users: list[str]) -> list[float]:
    """Servers started together: each one's seconds from its request to its page answering through the proxy."""
    api = hub.api
    for user in users:
        api.ensure_user(user)

    def one(user: str) -> float:
        started = time.time()
        response = api.api("POST", f"/users/{user}/server", json={})
        assert response.status_code in (201, 202), response.text
        # As a browser on the spawn page waits: on the hub's progress events, not by asking again and again
        # (ten clients asking every 50 ms would take a good part of the two cores the starts need).
        api.ready_by_progress(user)
        while api.get(f"/user/{user}/api/status").status_code != 200:
            time.sleep(0.05)
        return time.time() - started

    with ThreadPoolExecutor(len(users)) as pool:
        seconds = list(pool.map(one, users))
    for user in users:
        api.stop_server(user, timeout=120)
    return seconds


def breakdown_table(title: str, runs: dict[str, list[dict]]) -> None:
    names = list(runs)
    print(f"\n{title} (median of {len(next(iter(runs.values())))} starts each, seconds)")
    print(f"{'phase':<20}" + "".join(f"{name:>12}" for name in names))
    for phase in [*PHASES, "total"]:
        medians = [statistics.median(run[phase] for run in runs[name]) for name in names]
        print(f"{phase:<20}" + "".join(f"{value:>12.2f}" for value in medians))
    totals = {name: [run["total"] for run in runs[name]] for name in names}
    print(f"{'total p95':<20}" + "".join(f"{p95(totals[name]):>12.2f}" for name in names))
    print(f"{'server CPU, s':<20}" + "".join(
        f"{statistics.median(run['server CPU'] for run in runs[name]):>12.2f}" for name in names))
    if len(names) > 1:
        before, now = (statistics.median(totals[name]) for name in names[:2])
        print(f"ratio {names[1]}/{names[0]}: {now / before:.2f} at the median")


def image_sizes(client: docker.DockerClient) -> None:
    print("\nImages (the newest of each on this engine): size, and the largest layers")
    newest = {}
    for image in client.images.list():
        for tag in image.tags:
            name = tag.rsplit(":", 1)[0]
            if name.startswith("jupyterhub-gpu/") and (name not in newest or image.attrs["Created"] >
                                                       newest[name].attrs["Created"]):
                newest[name] = image
    for name, image in sorted(newest.items()):
        print(f"  {name:<40} {image.attrs['Size'] / 1e6:8.0f} MB")
        layers = sorted(client.api.history(image.id), key=lambda layer: -layer["Size"])[:3]
        for layer in layers:
            step = re.sub(r"\s+", " ", layer["CreatedBy"].replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", ""))
            print(f"      {layer['Size'] / 1e6:8.0f} MB  {step[:100]}")


SIMPLE = "https://pypi.org/simple/{}/"
LINUX_WHEEL = re.compile(r"-(cp311-cp311|py3-none)-(manylinux\S*x86_64|any)\.whl$")


def _wheel(project: str, version: str) -> dict:
    """The Linux x86-64 wheel of ``project`` ``version`` for CPython 3.11 (the images'), from PyPI's simple API."""
    request = urllib.request.Request(SIMPLE.format(project), headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        files = json.load(answer)["files"]
    prefix = f"{project.replace('-', '_')}-{version}-"
    return max((f for f in files if f["filename"].startswith(prefix) and LINUX_WHEEL.search(f["filename"])),
               key=lambda f: f["size"])


def pytorch_download(version: str = "2.9.1") -> None:
    """What installing torch==<version> downloads on Linux x86-64: its wheel and the pinned NVIDIA and Triton wheels
    its metadata requires there (PyPI's sizes; unpacked, they take about twice that)."""
    torch = _wheel("torch", version)
    with urllib.request.urlopen(torch["url"] + ".metadata", timeout=30) as answer:  # PEP 658
        metadata = answer.read().decode()
    rows = [("torch", version, torch["size"])]
    for project, pinned in re.findall(r"^Requires-Dist: ((?:nvidia-|triton)[A-Za-z0-9_.-]*)==([^;\s]+); "
                                      r"platform_system == \"Linux\"", metadata, flags=re.M):
        rows.append((project, pinned, _wheel(project, pinned)["size"]))
    total = sum(size for _, _, size in rows)
    print(f"\nThe PyTorch profile's download: torch {version} and the wheels it pins on Linux x86-64 (PyPI's sizes)")
    for project, pinned, size in sorted(rows, key=lambda row: -row[2]):
        print(f"  {project:<28} {pinned:<14} {size / 1e6:8.0f} MB  {size / total:6.1%}")
    print(f"  {'total':<28} {'':<14} {total / 1e6:8.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--at-once", type=int, default=10)
    parser.add_argument("--skip-pytorch", action="store_true", help="leave out PyPI's figures for PyTorch")
    parser.add_argument("--image", help="the single-user image (default: the newest here)")
    parser.add_argument("--gpu-image", help="the GPU profile's image (default: the newest here, if any)")
    args = parser.parse_args()

    client = testbed_engine.client()
    image = args.image or newest_image(client)
    baseline = baseline_of(client, image)
    profiles = [i for i in client.images.list("jupyterhub-gpu/profile-gpu-cuda") if i.tags]
    gpu_image = args.gpu_image or (max(profiles, key=lambda i: i.attrs["Created"]).tags[0] if profiles else None)
    print(f"image {image}; before: {baseline}; GPU profile: {gpu_image or 'not built here'}")
    hubs = {}
    with tempfile.TemporaryDirectory(prefix="spawn-breakdown-") as workdir:
        try:
            hubs["before"] = LocalHub(Path(workdir) / "before", client, baseline,
                                      {**DEPLOYED, "ready_poll_interval": 0})
            hubs["now"] = LocalHub(Path(workdir) / "now", client, image, dict(DEPLOYED))
            if gpu_image:
                hubs["GPU now"] = LocalHub(Path(workdir) / "gpu", client, gpu_image, {
                    **DEPLOYED, "gpu_ids": [uuid for _, uuid, _, _ in FAKE_GPUS]})
            for hub in hubs.values():
                hub.start()
            runs = {name: [] for name in hubs}
            for round_ in range(args.rounds):
                for name, hub in hubs.items():
                    runs[name].append(spawn(hub, f"bd{round_}"))
            breakdown_table("One server, started alone", {n: runs[n] for n in ("before", "now")})
            if gpu_image:
                breakdown_table("The GPU profile's server, with a stand-in GPU", {"GPU now": runs["GPU now"]})
            together = {name: at_once(hubs[name], [f"many{i}" for i in range(args.at_once)])
                        for name in ("before", "now")}
            print(f"\n{args.at_once} servers started at once, request to page (seconds)")
            for name, seconds in together.items():
                print(f"  {name:<8} median {statistics.median(seconds):6.2f}  p95 {p95(seconds):6.2f}  "
                      f"max {max(seconds):6.2f}")
            before, now = (statistics.median(together[name]) for name in ("before", "now"))
            print(f"  ratio now/before: {now / before:.2f} at the median, "
                  f"{p95(together['now']) / p95(together['before']):.2f} at p95")
        finally:
            for hub in hubs.values():
                hub.cleanup()
    image_sizes(client)
    if not args.skip_pytorch:
        pytorch_download()


if __name__ == "__main__":
    main()
