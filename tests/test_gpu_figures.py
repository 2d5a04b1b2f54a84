"""The GPUs' figures, without a hub: the sampler reading the test bed's stand-in nvidia-smi, the GPU service's rounds,
the cullers' judgement of GPU idleness and work, the gauges, and the GPU page and GPU-hours page as the hub's
templates render them."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gpudockerspawner import culling, service
from gpudockerspawner.figures import Figures, key_for, quiet_for, read_snapshot
from gpudockerspawner.metrics import FiguresCollector
from gpudockerspawner.plot import polyline
from gpudockerspawner.sampler import Sampler, handler, parse_line
from gpudockerspawner.usage import UsageLog
from testbed.nvidia import fake_gpus, fake_nvidia_smi

GPUS = fake_gpus(3)
UUIDS = [uuid for _, uuid, _, _ in GPUS]


def stand_in_driver(tmp_path, monkeypatch, gpus=GPUS):
    """The stand-in driver's nvidia-smi for ``gpus``, and how a test sets the figures of a GPU or MIG device
    (``work("0:1", 0, 5120)``)."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(fake_nvidia_smi(gpus))
    smi.chmod(0o755)
    figures = tmp_path / "figures"
    figures.mkdir()
    monkeypatch.setenv("NVIDIA_STANDIN_FIGURES", str(figures))

    def work(index, utilization: int, used_mib: int) -> None:
        (figures / str(index)).write_text(f"{utilization} {used_mib}\n")

    return smi, work


@pytest.fixture(autouse=True)
def samplers_stopped(monkeypatch):
    """Every sampler a test starts is stopped after it, and with it its ``nvidia-smi -l``, which would otherwise
    run on after the test (and after the test run)."""
    made = []
    make = Sampler.__init__

    def init(self, *args, **kwargs):
        make(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Sampler, "__init__", init)
    yield
    for sampler in made:
        sampler.stop()


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The stand-in driver's nvidia-smi for three GPUs, with figures a test sets."""
    return stand_in_driver(tmp_path, monkeypatch)


def test_the_sampler_reads_every_gpu_from_one_nvidia_smi_in_loop_mode_and_serves_json(stand_in):
    smi, work = stand_in
    work(1, 87, 4096)
    sampler = Sampler(interval=1, command=str(smi))
    threading.Thread(target=sampler.run, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(sampler, "gpu-host"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while len(sampler.gpus) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        work(2, 40, 100)
        time.sleep(2.5)  # two more rounds of the same nvidia-smi
        from urllib.request import urlopen

        report = json.load(urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=5))
    finally:
        server.shutdown()
    assert report["node"] == "gpu-host" and report["error"] is None
    figures = {gpu["uuid"]: gpu for gpu in report["gpus"]}
    assert [gpu["index"] for gpu in report["gpus"]] == ["0", "1", "2"]
    assert figures[UUIDS[1]]["utilization"] == 87.0 and figures[UUIDS[1]]["memory_used"] == 4096 * 2**20
    assert figures[UUIDS[2]]["utilization"] == 40.0  # changed while the same nvidia-smi ran
    assert figures[UUIDS[0]]["memory_total"] == 16384 * 2**20


def test_the_sampler_says_what_is_wrong_where_the_driver_answers_nothing_usable():
    assert parse_line("0, GPU-x, A100, [N/A], 10, 40960", 1.0)["utilization"] is None
    assert parse_line("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 1.0) is None
    sampler = Sampler(interval=1, command="/nonexistent/nvidia-smi")
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert sampler.report("h")["error"] == "/nonexistent/nvidia-smi: No such file or directory"


def report(node: str, utilizations: list[float | None], at: float) -> dict:
    return {"node": node, "interval": 5, "gpus": [
        {"index": str(i), "uuid": UUIDS[i], "name": "Stand-in GPU", "utilization": u, "memory_used": 2**30,
         "memory_total": 16 * 2**30, "at": at} for i, u in enumerate(utilizations)]}


def test_a_gpu_is_quiet_since_its_last_busy_sample_or_since_the_figures_began(tmp_path):
    figures = Figures([], interval=5, busy_at=5, snapshot_file=tmp_path / "figures.json")
    figures.add(report("h", [50, 1, None], at=1000.0), 1000.0)
    figures.add(report("h", [3, 2, None], at=1005.0), 1005.0)
    figures.round_at = time.time()
    figures.write_snapshot()
    snapshot = read_snapshot(tmp_path / "figures.json")
    assert key_for(snapshot, "1") == UUIDS[1] and key_for(snapshot, UUIDS[0]) == UUIDS[0]
    assert quiet_for(snapshot, [UUIDS[0]], "", started=900.0, now=1100.0) == 100.0  # busy at 1000
    assert quiet_for(snapshot, ["1"], "", started=900.0, now=1100.0) == 100.0  # never busy: since first seen
    assert quiet_for(snapshot, ["1"], "", started=1050.0, now=1100.0) == 50.0  # since its server started
    assert quiet_for(snapshot, ["0", "1"], "", started=0.0, now=1100.0) == 100.0
    assert quiet_for(snapshot, ["GPU-unknown"], "", started=0.0, now=1100.0) is None
    assert len(figures.hour(UUIDS[0])) == 2
    # A snapshot four rounds old says nothing of now.
    figures.round_at = time.time() - 60
    figures.write_snapshot()
    assert read_snapshot(tmp_path / "figures.json") is None


def test_a_round_asks_every_address_a_sampler_name_resolves_to(tmp_path, stand_in):
    smi, work = stand_in
    sampler = Sampler(interval=1, command=str(smi))
    threading.Thread(target=sampler.run, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(sampler, "node-a"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        time.sleep(1.5)
        figures = Figures([f"http://localhost:{server.server_port}/", "http://no-such-sampler.invalid:9400/"],
                          interval=1, busy_at=5, on_nodes=True, snapshot_file=tmp_path / "f.json")
        asyncio.run(figures.poll())
    finally:
        server.shutdown()
    assert sorted(figures.latest) == sorted(f"node-a/{uuid}" for uuid in UUIDS)
    assert any("no-such-sampler.invalid" in error for error in figures.errors)
    assert read_snapshot(tmp_path / "f.json")["gpus"][f"node-a/{UUIDS[0]}"]["node"] == "node-a"


def server(gpus, started_ago: float, user: str = "ann") -> dict:
    started = datetime.now(timezone.utc) - timedelta(seconds=started_ago)
    return {"state": {"gpus": gpus}, "started": started.isoformat().replace("+00:00", "Z"), "url": f"/user/{user}/"}


@pytest.fixture
def rules(tmp_path, monkeypatch):
    """Figures where GPU 0 worked until 10 s ago and GPU 1 has been quiet for 10 minutes."""
    now = time.time()
    figures = Figures([], interval=5, busy_at=5, snapshot_file=tmp_path / "figures.json")
    figures.add(report("h", [2, 2], at=now - 600), now - 600)
    figures.add(report("h", [90, 0], at=now - 10), now - 10)
    figures.round_at = now
    figures.write_snapshot()
    usage = UsageLog(tmp_path / "usage.sqlite")
    for user in ("ann", "bob"):
        usage.opened(f"{user}/", ["0"])

    def set_rules(**values) -> UsageLog:
        base = culling.CullRules(figures_file=str(tmp_path / "figures.json"), usage_db=str(usage.path), busy_window=300)
        for key, value in {**base.environment(),
                           **culling.CullRules(**{**base.__dict__, **values}).environment()}.items():
            monkeypatch.setenv(key, value)
        return usage

    return set_rules


def test_gpu_idleness_culls_a_server_a_browser_keeps_active_and_says_why(rules):
    usage = rules(gpu_idle=True)
    active = timedelta(seconds=5)
    # GPU 1 quiet for 10 minutes, over the 300 s limit: culled though its browser is active.
    assert culling.gpu_arbiter(inactive=active, inactive_limit=300, server=server(["1"], 3600))
    assert usage.holds()[0].reason == "culled: its GPU was idle (under 5% utilisation) for 10 minutes"
    # GPU 0 was busy 10 s ago: kept.
    assert not culling.gpu_arbiter(inactive=active, inactive_limit=300, server=server(["0"], 3600, "bob"))
    # A server started 2 minutes ago on the quiet GPU: quiet only since its start.
    assert not culling.gpu_arbiter(inactive=active, inactive_limit=300, server=server(["1"], 120, "bob"))


def test_a_busy_gpu_keeps_a_server_with_no_browser_until_its_maximum_age(rules):
    rules(busy_keeps=True, gpu_max_age=7200)
    idle = timedelta(seconds=4000)
    assert not culling.gpu_arbiter(inactive=idle, inactive_limit=300, server=server(["0"], 3600))
    assert not culling.arbiter(inactive=idle, inactive_limit=3600, server=server(["0"], 3600))
    assert culling.gpu_arbiter(inactive=idle, inactive_limit=300, server=server(["1"], 3600))  # quiet: culled
    assert culling.arbiter(inactive=idle, inactive_limit=3600, server=server(["1"], 3600))
    assert culling.gpu_arbiter(inactive=idle, inactive_limit=300, server=server(["0"], 7300))  # its maximum age


def test_without_figures_only_jupyters_activity_counts(rules, tmp_path):
    rules(gpu_idle=True, busy_keeps=True, figures_file=str(tmp_path / "none.json"))
    assert not culling.gpu_arbiter(inactive=timedelta(seconds=5), inactive_limit=300, server=server(["1"], 3600))
    assert culling.gpu_arbiter(inactive=timedelta(seconds=400), inactive_limit=300, server=server(["0"], 3600))


def test_the_gauges_show_the_figures_and_the_counter_the_gpu_seconds(tmp_path):
    figures = Figures([], interval=5, busy_at=5, snapshot_file=tmp_path / "figures.json")
    figures.add(report("gpu-host", [37, None], at=time.time()), time.time())
    figures.round_at = time.time()
    figures.write_snapshot()
    usage = UsageLog(tmp_path / "usage.sqlite")
    usage.opened("ann/", ["0"], at=time.time() - 100)
    usage.closed("ann/", at=time.time() - 40)
    registry = CollectorRegistry()
    registry.register(FiguresCollector(str(tmp_path / "figures.json"), str(usage.path)))
    text = generate_latest(registry).decode()
    assert f'jupyterhub_gpu_utilization_ratio{{gpu="{UUIDS[0]}",node="gpu-host"}} 0.37' in text
    assert f'jupyterhub_gpu_utilization_ratio{{gpu="{UUIDS[1]}"' not in text  # the driver gave none
    assert f'jupyterhub_gpu_memory_used_bytes{{gpu="{UUIDS[1]}",node="gpu-host"}} 1.073741824e+09' in text
    total = re.search(rf'jupyterhub_gpu_memory_total_bytes{{gpu="{UUIDS[0]}",node="gpu-host"}} (\S+)', text)
    assert total and float(total.group(1)) == 16 * 2**30
    seconds = re.search(r'jupyterhub_gpu_seconds_total\{user="ann"\} ([0-9.]+)', text)
    assert seconds and 59 <= float(seconds.group(1)) <= 61


def test_the_gpu_page_and_the_usage_page_render_in_the_hubs_page_template(tmp_path):
    now = time.time()
    figures = Figures([], interval=5, busy_at=5)
    figures.add(report("h", [80, 0], at=now - 1800), now - 1800)
    figures.add(report("h", [60, 0], at=now), now)
    table = {"servers": [{"user": "ann", "server": "", "gpus": [UUIDS[0]], "ready": True, "node": None}]}
    rows = service.gpu_rows(figures, table, {"ann/": now - 3700})
    assert [row["holders"] for row in rows] == [["ann/"], []]
    assert polyline(rows[0]["hour"], now) == "80.0,5.6 160.0,11.2"
    jinja = service.make_app(figures).settings["jinja"]
    page = service.render(
        jinja, "gpus.html", {"name": "ann"}, True, "/services/gpus/", admin=True, rows=rows, free=1, total=2,
                          on_nodes=False, servers=table["servers"], sampled=True, errors=[],
        sparkline=lambda row: "", when=lambda t: "t", gib=lambda v: "g", busy_at=5, duration=str,
        held_for=lambda row: "1 hours 1 minutes")
    assert 'id="dark-theme-toggle"' in page and "navbar" in page  # the hub's own page
    assert "1 of 2 GPUs free" in page and "ann/" in page and "60%" in page
    usage = service.render(
        jinja, "usage.html", {"name": "ann"}, True, "/services/gpus/", since=0, until=now,
                           totals={"users": {"ann": 7200.0}, "groups": {}, "gpus": {}}, holds=[], week=0, month=0,
        when=lambda t: "t", hours=lambda s: f"{s / 3600:.2f}", day=lambda t: "d", recorded=True)
    assert "<td>ann</td><td class=\"text-end\">2.00</td>" in usage and "format=csv" in usage
    error = service.render(jinja, "gpus-error.html", {"name": "bob"}, False, "/services/gpus/", status_code=403,
                           reason="Forbidden", message="Only the hub's admins see everyone's GPUs.")
    assert "<h1>403 Forbidden</h1>" in error and "Only the hub&#39;s admins" in error and "navbar" in error


def test_a_range_is_refused_with_what_is_allowed():
    with pytest.raises(Exception) as bad:
        service._range("last tuesday", None)
    assert "since='last tuesday': give an ISO 8601 date or time" in str(bad.value.log_message)
    since, until = service._range("2026-11-01", "2026-11-02T00:00Z")
    assert until - since == 86400


def test_page_views_in_one_sampling_round_share_one_question_to_the_hub():
    asked = []

    async def fetch():
        asked.append(time.monotonic())
        await asyncio.sleep(0.05)  # the hub's answer takes a moment: views arriving meanwhile wait for the same one
        return {"gpus": {}, "servers": [], "asked": len(asked)}

    async def views():
        shared = service.RoundAssignments(fetch, max_age=0.5)
        first = await asyncio.gather(*(shared.get() for _ in range(20)))
        again = await shared.get()
        await asyncio.sleep(0.6)
        return first, again, await shared.get()

    first, again, next_round = asyncio.run(views())
    assert {table["asked"] for table in first} == {1} and again["asked"] == 1
    assert next_round["asked"] == 2, "a new round asks the hub again"


def test_the_sampler_reports_each_mig_device_with_its_memory_under_its_gpu(tmp_path, monkeypatch):
    from testbed.nvidia import LAB_GPUS

    smi, work = stand_in_driver(tmp_path, monkeypatch, LAB_GPUS)
    work("0:1", 0, 5120)  # a model loaded in the first 1g.10gb slice
    work(1, 87, 18211)
    sampler = Sampler(interval=1, command=str(smi))
    for run in (sampler.run, sampler.run_migs):
        threading.Thread(target=run, daemon=True).start()
    deadline = time.monotonic() + 10
    while (len(sampler.gpus) < 3 or len(sampler.migs) < 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    report = sampler.report("lab")
    assert [gpu["index"] for gpu in report["gpus"]] == ["0", "0:0", "0:1", "0:2", "1", "2"]
    by_index = {gpu["index"]: gpu for gpu in report["gpus"]}
    assert by_index["0"]["utilization"] is None  # a GPU in MIG mode: the driver says N/A, and so does the sampler
    assert (by_index["0:1"]["profile"], by_index["0:1"]["parent"], by_index["0:1"]["utilization"]) == (
        "1g.10gb", "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45", None)
    assert (by_index["0:1"]["memory_used"], by_index["0:1"]["memory_total"]) == (5120 * 2**20, 9728 * 2**20)
    assert by_index["0:1"]["uuid"] == "MIG-8243111b-d4c4-587a-a96d-da04583b36e2"
    assert (by_index["1"]["utilization"], by_index["1"]["memory_used"]) == (87.0, 18211 * 2**20)


def test_the_gpu_page_shows_slices_under_their_gpu_and_a_slice_is_idle_while_its_memory_is_free(tmp_path):
    """What the sampler of the lab host reports (a GPU in MIG mode and its three MIG devices, and a whole GPU), as
    the GPU page shows it, and as GPU-idle culling reads a slice: memory in use, NVIDIA's driver measuring no
    utilisation per MIG device."""
    parent = "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"

    def lab_report(at: float, slice_used_mib: int) -> dict:
        mig = {"name": "NVIDIA A100-SXM4-80GB", "parent": parent, "utilization": None, "at": at}
        return {"node": "lab", "gpus": [
            {"index": "0", "uuid": parent, "name": "NVIDIA A100-SXM4-80GB", "utilization": None,
             "memory_used": 0, "memory_total": 81920 * 2**20, "at": at},
            {**mig, "index": "0:0", "uuid": "MIG-0", "profile": "3g.40gb", "memory_used": 0,
             "memory_total": 40192 * 2**20},
            {**mig, "index": "0:1", "uuid": "MIG-1", "profile": "1g.10gb", "memory_used": slice_used_mib * 2**20,
             "memory_total": 9728 * 2**20},
            {**mig, "index": "0:2", "uuid": "MIG-2", "profile": "1g.10gb", "memory_used": 13 * 2**20,
             "memory_total": 9728 * 2**20},
            {"index": "1", "uuid": "GPU-rtx", "name": "NVIDIA GeForce RTX 4090", "utilization": 87.0,
             "memory_used": 0, "memory_total": 24564 * 2**20, "at": at}]}

    figures = Figures([], interval=5, busy_at=5, snapshot_file=tmp_path / "figures.json")
    figures.add(lab_report(1000.0, 5120), 1000.0)  # a model loaded in slice 0:1
    figures.add(lab_report(1005.0, 13), 1005.0)  # and let go: the driver's 13 MiB are not work
    figures.round_at = time.time()
    figures.write_snapshot()
    snapshot = read_snapshot(tmp_path / "figures.json")
    assert quiet_for(snapshot, ["MIG-1"], "", started=900.0, now=1100.0) == 100.0  # in use until 1000
    assert quiet_for(snapshot, ["MIG-2"], "", started=900.0, now=1100.0) == 100.0  # never: since first seen
    table = {"servers": [{"user": "ann", "server": "", "gpus": ["MIG-1"], "ready": True, "node": None}]}
    rows = service.gpu_rows(figures, table, {"ann/": 900.0})
    assert [(row["index"], row["sliced"], row["holders"]) for row in rows] == [
        ("0", True, []), ("0:0", False, []), ("0:1", False, ["ann/"]), ("0:2", False, []), ("1", False, [])]
    jinja = service.make_app(figures).settings["jinja"]
    page = service.render(
        jinja, "gpus.html", {"name": "ann"}, True, "/services/gpus/", admin=True, rows=rows,
        free=service.free_of(rows)[0], total=service.free_of(rows)[1], on_nodes=False, servers=table["servers"],
        sampled=True,
        errors=[], sparkline=lambda row: "", when=lambda t: "t", gib=lambda v: f"{v / 2**30:.1f} GiB", busy_at=5,
        duration=str, held_for=lambda row: "")
    assert "3 of 4 GPUs free" in page  # the slices and the 4090; the A100 in MIG mode is not handed out whole
    assert "(in MIG mode: handed out as its slices)" in page and page.count("↳ MIG 1g.10gb slice") == 2
    assert page.count("not measured (MIG)") == 4 and "87%" in page


def test_the_sampler_runs_as_a_lone_script_as_a_clusters_nodes_run_it(tmp_path, stand_in):
    """A cluster's GPU nodes get sampler.py alone (a Swarm config) in an image without the spawner package: it
    imports only the standard library, and samples whole GPUs there."""
    import runpy
    import shutil
    import sys

    from gpudockerspawner import sampler as module

    smi, work = stand_in
    work(0, 33, 100)
    lone = tmp_path / "gpu-sampler.py"
    shutil.copy(module.__file__, lone)
    saved = {name: sys.modules.get(name) for name in list(sys.modules) if name.startswith("gpudockerspawner")}
    try:
        for name in saved:
            sys.modules[name] = None
        sys.modules["gpudockerspawner"] = None  # as where the package is not there at all
        script = runpy.run_path(str(lone), run_name="gpu_sampler")
        lone_sampler = script["Sampler"](interval=1, command=str(smi))
        threading.Thread(target=lone_sampler.run, daemon=True).start()
        lone_sampler.run_migs()  # says it cannot read MIG devices here, and returns
        deadline = time.monotonic() + 10
        while len(lone_sampler.gpus) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for name, loaded in saved.items():
            sys.modules[name] = loaded
    report = lone_sampler.report("node")
    lone_sampler.stop()  # its own class (the script's): the fixture does not see it
    assert report["gpus"][0]["utilization"] == 33.0
