"""A person's own server as JupyterLab shows it (server_view.py, and the lab extension's server part): the status
bar's words for a whole GPU, a MIG slice, several GPUs and a CPU server; the coming stop, computed as the cullers
act on it; the warnings due, each once; and the server extension's question to the GPU service."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from gpudockerspawner import culling
from gpudockerspawner.budgets import Period, Standing
from gpudockerspawner.figures import Figures, idle_since
from gpudockerspawner.server_view import Stops, gpu_figures, next_stop, status_text, view, warnings_due

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from jupyterhub_gpu_lab.hub_view import HubView  # noqa: E402

GIB = 2**30
A100 = {"index": "0", "uuid": "GPU-a100", "name": "NVIDIA A100-SXM4-80GB", "utilization": 37.0,
        "memory_used": 12 * GIB, "memory_total": 80 * GIB}
SLICE = {"index": "0:1", "uuid": "MIG-1", "name": "NVIDIA A100-SXM4-80GB", "profile": "1g.10gb", "parent": "GPU-a100",
         "utilization": None, "memory_used": int(4.1 * GIB), "memory_total": int(9.8 * GIB)}
UTC = timezone.utc


def test_the_status_bar_says_what_the_server_holds_in_a_few_words():
    assert status_text([A100], "NVIDIA A100-SXM4-80GB") == "GPU: A100-SXM4-80GB · 37 % · 12.0 / 80.0 GiB"
    assert status_text([SLICE], "NVIDIA A100-SXM4-80GB MIG 1g.10gb") == "MIG 1g.10gb · 4.1 / 9.8 GiB"
    second = {**A100, "uuid": "GPU-b", "index": "1", "utilization": 63.0, "memory_used": 40 * GIB}
    assert status_text([A100, second], "") == "2 GPUs: A100-SXM4-80GB · 50 % · 52.0 / 160.0 GiB"
    assert status_text([], "") == "CPU only"
    # Held, but no sampler has answered for it yet.
    assert status_text([{"uuid": "GPU-a100"}], "NVIDIA A100-SXM4-80GB") == "GPU: A100-SXM4-80GB · no figures yet"


def test_a_gpu_holder_a_slice_and_a_cpu_server_each_get_their_own_view():
    now = 10_000.0
    hour = [(now - 60, 20.0), (now, 37.0)]
    gpu = gpu_figures(A100, hour, [(now, 15.0)], now)
    stops = Stops(gpu_idle_timeout=1800, gpu_idle=True, gpu_max_age=8 * 3600, cull_every=60)
    held = view(user="ann", server="", gpus=[gpu], since=now - 3600, kind="NVIDIA A100-SXM4-80GB",
                rule="granted under group students' rule", stops=stops, idle_from=now - 22 * 60, budget=None,
                budget_end=math.inf, now=now, sample_interval=5)
    assert held["status"] == {"text": "GPU: A100-SXM4-80GB · 37 % · 12.0 / 80.0 GiB", "level": "warning"}
    # The last hour as the GPU page draws it: now at the right edge.
    assert held["gpus"][0]["plot"] == {"width": 160, "height": 28, "utilization": "157.3,22.4 160.0,17.6",
                                       "memory": "160.0,23.8"}
    assert held["stop"]["why"] == "gpu-idle" and held["stop"]["at"] == now + 8 * 60
    assert held["stop"]["sentence"] == (
        f"Your GPU has been idle for 22 minutes: this server stops at {time.strftime('%H:%M', time.gmtime(now + 480))}"
        " UTC unless the GPU gets work. Keep it busy or save your work.")
    # 8 minutes ahead: within the 15-minute warning, not yet the 5-minute one.
    assert [n["id"] for n in held["notices"]] == [f"stop-gpu-idle-{int(now - 22 * 60)}-15"]
    stops_at = time.strftime("%H:%M UTC", time.gmtime(now + 480))
    assert held["notices"][0]["message"] == (f"This server stops in about 8 minutes ({stops_at}): its GPU is idle. "
                                             "Give it work or save your work.")

    sliced = view(user="ben", server="", gpus=[gpu_figures(SLICE, [], [(now, 41.8)], now)], since=now - 60,
                  kind="NVIDIA A100-SXM4-80GB MIG 1g.10gb", rule="granted under the rule for everyone", stops=stops,
                  idle_from=now, budget=None, budget_end=math.inf, now=now, sample_interval=5)
    assert sliced["status"] == {"text": "MIG 1g.10gb · 4.1 / 9.8 GiB", "level": "ok"}
    assert sliced["gpus"][0]["plot"]["utilization"] == ""  # the driver measures none per MIG device
    # Its GPU at work: the idleness stop is not coming; the maximum age is the next stop, hours away.
    assert sliced["stop"]["why"] == "gpu-max-age" and sliced["notices"] == []
    assert sliced["idle_note"] == "Your GPU is at work. Left idle for 30 minutes, this server would be stopped."

    cpu = view(user="cleo", server="", gpus=[], since=None, kind="", rule="", stops=stops, idle_from=None,
               budget=None, budget_end=math.inf, now=now, sample_interval=5)
    assert cpu["status"] == {"text": "CPU only", "level": "ok"}
    assert cpu["stop"] is None and cpu["notices"] == []


def _server(gpus: list[str], started: float) -> dict:
    at = datetime.fromtimestamp(started, UTC)
    return {"state": {"gpus": gpus}, "started": at.isoformat().replace("+00:00", "Z"), "url": "/user/ann/"}


@pytest.mark.parametrize("idle_for, age", [(295, 1000), (301, 1000), (100, 3595), (100, 3601), (10, 50)])
def test_the_stop_is_due_when_the_gpu_culler_would_cull_and_not_before(tmp_path, monkeypatch, idle_for, age):
    """The culler's own arbiter decides on the same figures: it culls at a look exactly when the view says the
    stop is due (its moment reached), for GPU idleness (300 s) and the maximum age of a GPU server (3600 s)."""
    now = time.time()
    started = now - age
    figures = Figures([], interval=5, busy_at=5, snapshot_file=tmp_path / "figures.json")
    busy_at = now - idle_for
    figures.add({"node": "h", "gpus": [{"index": "0", "uuid": "GPU-0", "utilization": 90, "at": busy_at}]}, busy_at)
    figures.add({"node": "h", "gpus": [{"index": "0", "uuid": "GPU-0", "utilization": 0, "at": now}]}, now)
    figures.round_at = now
    figures.write_snapshot()
    stops = Stops(gpu_idle_timeout=300, gpu_idle=True, gpu_max_age=3600, cull_every=5)
    rules = culling.CullRules(gpu_max_age=3600, gpu_idle=True, busy_window=300, figures_file=str(figures.snapshot_file))
    for key, value in rules.environment().items():
        monkeypatch.setenv(key, value)
    idle_from = idle_since(figures.snapshot(), ["GPU-0"], "", started)
    stop, _ = next_stop(stops, started, idle_from, math.inf, now, 5)
    due = stop.at <= now
    culled = culling.gpu_arbiter(inactive=timedelta(seconds=1), inactive_limit=300, server=_server(["GPU-0"], started))
    assert culled == due, (stop, culled)


def test_each_warning_is_due_once_per_stop_and_the_tightest_one_first():
    stops = Stops(gpu_max_age=3600, warnings=(15.0, 5.0))
    stop, _ = next_stop(stops, started=0.0, idle_from=None, budget_end=math.inf, now=3600 - 20 * 60,
                        sample_interval=5)
    assert warnings_due(stop, stops, 3600 - 20 * 60) == []
    at_14 = warnings_due(stop, stops, 3600 - 14 * 60)
    at_10 = warnings_due(stop, stops, 3600 - 10 * 60)
    at_4 = warnings_due(stop, stops, 3600 - 4 * 60)
    # The same warning at 14 and at 10 minutes (JupyterLab shows it once), another at 4.
    assert at_14[0]["id"] == at_10[0]["id"] == "stop-gpu-max-age-0-15" and at_4[0]["id"] == "stop-gpu-max-age-0-5"
    assert at_4[0]["message"] == ("This server stops in about 4 minutes (01:00 UTC): a GPU server's maximum age. Save "
                                  "your work.")
    # None set: no warnings, though the panel still says when.
    assert warnings_due(stop, Stops(gpu_max_age=3600, warnings=()), 3600 - 60) == []


def test_a_budget_is_warned_of_at_80_percent_and_its_end_is_a_stop():
    week = Period("week")
    monday = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    standing = Standing("", False, 10.0, 8.5, monday, monday + 7 * 86400, week, UTC)
    now = monday + 86400
    found = view(user="ann", server="", gpus=[gpu_figures(A100, [], [], now)], since=now - 600, kind="",
                 rule="granted under the rule for everyone", stops=Stops(warnings=(15.0, 5.0)), idle_from=None,
                 budget=standing, budget_end=now + 600, now=now, sample_interval=5)
    assert found["budget"]["sentence"] == "1.5 of 10 GPU-hours left this week; renews Monday 00:00 UTC."
    assert found["stop"]["why"] == "budget" and found["stop"]["at"] == now + 600
    assert [notice["id"] for notice in found["notices"]] == [f"stop-budget-{int(now - 600)}-15",
                                                             f"budget-0.8-{int(monday)}"]
    assert found["notices"][1]["message"] == "You have used 85 % of your GPU budget this week: 1.5 GPU-hours left."


class StandIn(RequestHandler):
    """The GPU service's api/me as the server extension meets it: counts questions, answers what it is told."""

    def get(self):
        state = self.application.settings["state"]
        state["asked"].append((self.get_argument("server"), self.request.headers["Authorization"]))
        status, body = state["answer"]
        self.set_status(status)
        self.finish(json.dumps(body))


def test_the_server_extension_reads_the_address_from_the_variable_the_hub_sets():
    """Two packages (the hub's and the lab extension's, which must not need the hub's) name one variable."""
    from jupyterhub_gpu_lab import hub_view

    from gpudockerspawner import service

    assert hub_view.VIEW_URL_ENV == service.VIEW_URL_ENV


def test_the_server_extension_asks_once_per_interval_with_its_token_and_keeps_the_last_answer_when_one_fails():
    async def scenario():
        settings = {"asked": [], "answer": (200, {"interval": 0.3, "status": {"text": "CPU only", "level": "ok"}})}
        (sock,) = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application([(r"/services/gpus/api/me", StandIn)], state=settings))
        server.add_sockets([sock])
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/services/gpus/api/me"
        source = HubView(url, "server-token", "")
        answers = await asyncio.gather(*(source.get() for _ in range(5)))
        assert settings["asked"] == [("", "token server-token")]  # five tabs, one question
        assert answers[0] == {"available": True, "interval": 0.3, "status": {"text": "CPU only", "level": "ok"}}
        await asyncio.sleep(0.35)
        settings["answer"] = (403, {"status": 403, "message": "A token reads its own owner's GPU view only."})
        failed = await source.get()
        assert failed["status"]["text"] == "CPU only"  # the last words kept
        assert failed["error"] == ("The hub's GPU service answered 403: A token reads its own owner's GPU view only.")
        server.stop()
        await asyncio.sleep(0.35)
        gone = await source.get()
        assert gone["error"].startswith("The hub's GPU service does not answer")

    asyncio.run(scenario())
