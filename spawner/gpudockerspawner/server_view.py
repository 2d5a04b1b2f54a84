"""One person's own server as they see it in JupyterLab: the GPUs it holds with their figures and last hour, the rule
that granted them, the GPU budget, when and why the server will be stopped, and the warnings due now.

The GPU service answers this to the server's own API token (``api/me``, see service.py); the lab extension
(``spawner/lab``) shows it in JupyterLab's status bar, a panel and its notifications. Everything a person reads there is
worded here, so that the hub's pages and JupyterLab say the same thing the same way.

When a server stops is worked out as the cullers act (culling.py): the GPU culler stops a server whose GPUs stayed
under the busy mark for ``gpu_idle_timeout`` (where GPU idleness counts, ``gpu_idle``) or that reached
``gpu_max_age``; the hub-wide culler any server at ``max_age``; each at its first look at or after that moment
(every ``cull_every`` seconds). A server's GPU budget stops it where it runs out at the pace of the GPUs held, after
``budget_grace`` (budget_keeping.py). Jupyter's own idleness is left out: a person looking at JupyterLab is active.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from gpudockerspawner.budgets import WARN_USED, Standing, clock, hours
from gpudockerspawner.plot import HEIGHT, WIDTH, polyline
from gpudockerspawner.words import duration

GIB = 2**30
# Minutes before a stop at which JupyterLab warns, by default (the culling settings' cull_warnings).
WARNINGS = (15.0, 5.0)


@dataclass(frozen=True)
class Stops:
    """What the cullers go by (the deploy's culling settings), as the GPU service is told them."""

    gpu_idle_timeout: int = 0
    gpu_idle: bool = False
    gpu_max_age: int = 0
    max_age: int = 0
    cull_every: int = 60
    # Minutes before a stop at which JupyterLab warns, each once.
    warnings: tuple[float, ...] = field(default=WARNINGS)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Stops:
        values = json.loads(text) if text else {}
        return cls(**{**values, "warnings": tuple(values.get("warnings", WARNINGS))})


@dataclass(frozen=True)
class Stop:
    """The server's next stop: ``why`` ("gpu-idle", "gpu-max-age", "max-age" or "budget") at about ``at`` (Unix
    seconds: the culler's next look at or after it), ``key`` what makes it this stop and no other (its warnings are
    given once per key), and the sentence a person reads."""

    why: str
    at: float
    key: int
    sentence: str

    # What a warning says of each stop, short enough for a notification (JupyterLab cuts a toast at 140 characters).
    WARNED = {"gpu-idle": "its GPU is idle. Give it work or save your work.",
              "gpu-max-age": "a GPU server's maximum age. Save your work.",
              "max-age": "a server's maximum age. Save your work.",
              "budget": "your GPU budget runs out. Save your work."}

    def warning(self, now: float) -> str:
        left = self.at - now
        when = "in less than a minute" if left < 60 else f"in about {duration(math.ceil(left / 60) * 60)}"
        return f"This server stops {when} ({clock(self.at)}): {self.WARNED[self.why]}"


def next_stop(stops: Stops, started: float, idle_from: float | None, budget_end: float, now: float,
              sample_interval: float) -> tuple[Stop | None, str]:
    """The first stop ahead of a GPU server started at ``started``, whose GPUs have been idle since ``idle_from``
    (None: not known), whose GPU budget ends at ``budget_end`` (infinity: it lasts): the stop, and what keeps the
    GPU idleness stop away while the GPU works ("" where it does not apply)."""
    ahead, note = [], ""
    if stops.gpu_idle and stops.gpu_idle_timeout and idle_from is not None:
        limit = duration(stops.gpu_idle_timeout)
        # The GPU worked in the last two samples: no stop is coming for idleness while it goes on.
        if now - idle_from <= 2 * sample_interval:
            note = f"Your GPU is at work. Left idle for {limit}, this server would be stopped."
        else:
            at = idle_from + stops.gpu_idle_timeout
            ahead.append(("gpu-idle", at, int(idle_from),
                          f"Your GPU has been idle for {duration(now - idle_from)}: this server stops at {clock(at)} "
                          "unless the GPU gets work. Keep it busy or save your work."))
    if stops.gpu_max_age:
        at = started + stops.gpu_max_age
        ahead.append(("gpu-max-age", at, int(started),
                      f"This server stops at {clock(at)}, at the maximum age of a GPU server "
                      f"({duration(stops.gpu_max_age)}). Save your work before then."))
    if stops.max_age:
        at = started + stops.max_age
        ahead.append(("max-age", at, int(started),
                      f"This server stops at {clock(at)}, at the maximum age of a server ({duration(stops.max_age)})."
                      " Save your work before then."))
    if budget_end < math.inf:
        ahead.append(("budget", budget_end, int(started),
                      f"At this pace your GPU budget runs out and this server stops at about {clock(budget_end)}. "
                      "Save your work before then."))
    if not ahead:
        return None, note
    why, at, key, sentence = min(ahead, key=lambda each: each[1])
    if why != "budget":  # the culler acts at its first look at or after the moment
        at = max(at, now)
    return Stop(why, at, key, sentence), note


def warnings_due(stop: Stop | None, stops: Stops, now: float) -> list[dict]:
    """The warning due now of ``stop``: the tightest of ``stops.warnings`` it is within (none where it is further
    away). Its id is the stop's and the warning's: JupyterLab shows each once."""
    if stop is None:
        return []
    left = stop.at - now
    crossed = [minutes for minutes in stops.warnings if left <= minutes * 60]
    if not crossed:
        return []
    minutes = min(crossed)
    return [{"id": f"stop-{stop.why}-{stop.key}-{minutes:g}", "level": "warning", "message": stop.warning(now)}]


def budget_warnings(found: Standing | None) -> list[dict]:
    """From 80 % of a GPU budget used: once per period."""
    if found is None or found.limit <= 0 or found.used < WARN_USED * found.limit:
        return []
    return [{"id": f"budget-{WARN_USED:g}-{int(found.start)}", "level": "warning",
             "message": f"You have used {100 * found.used / found.limit:.0f} % of your GPU budget "
                        f"{found.period.name()}: {hours(max(0.0, found.left))} GPU-hours left."}]


def short_model(name: str) -> str:
    """"NVIDIA A100-SXM4-80GB" as a status bar has room for: "A100-SXM4-80GB"."""
    return name.removeprefix("NVIDIA ").strip() or "GPU"


def _gib(value: float | None) -> str:
    return "?" if value is None else f"{value / GIB:.1f}"


def status_text(gpus: list[dict], kind: str) -> str:
    """The status bar's words: "GPU: A100-SXM4-80GB · 37 % · 12.0 / 80.0 GiB", a MIG slice's "MIG 1g.10gb · 4.1 /
    9.8 GiB" (the driver measures no utilisation per slice), "2 GPUs: ..." for several, "CPU only" for none."""
    if not gpus:
        return "CPU only"
    first = gpus[0]
    if not first.get("memory_total"):
        return f"GPU: {short_model(kind or first.get('name') or 'GPU')} · no figures yet"
    used = sum(gpu.get("memory_used") or 0 for gpu in gpus)
    total = sum(gpu.get("memory_total") or 0 for gpu in gpus)
    memory = f"{_gib(used)} / {_gib(total)} GiB"
    if first.get("profile"):
        what = f"MIG {first['profile']}"
        return f"{what} · {memory}" if len(gpus) == 1 else f"{len(gpus)} × {what} · {memory}"
    measured = [gpu["utilization"] for gpu in gpus if gpu.get("utilization") is not None]
    work = f" · {sum(measured) / len(measured):.0f} %" if measured else ""
    label = "GPU" if len(gpus) == 1 else f"{len(gpus)} GPUs"
    return f"{label}: {short_model(first.get('name') or kind)}{work} · {memory}"


def gpu_figures(figure: dict, utilization_hour: list, memory_hour: list, now: float) -> dict:
    """One held GPU's figures for the panel, with the last hour drawn as the GPU page draws it (plot.py)."""
    keep = ("index", "uuid", "name", "profile", "utilization", "memory_used", "memory_total", "node")
    return {**{key: figure.get(key) for key in keep},
            "plot": {"width": WIDTH, "height": HEIGHT, "utilization": polyline(utilization_hour, now),
                     "memory": polyline(memory_hour, now)}}


def view(*, user: str, server: str, gpus: list[dict], since: float | None, kind: str, rule: str, stops: Stops,
         idle_from: float | None, budget: Standing | None, budget_end: float, now: float,
         sample_interval: float) -> dict:
    """The answer of ``api/me``: ``gpus`` as ``gpu_figures`` gives them (empty: a CPU server, or no server)."""
    stop, note = (next_stop(stops, since or now, idle_from, budget_end, now, sample_interval) if gpus
                  else (None, ""))
    notices = warnings_due(stop, stops, now) + budget_warnings(budget)
    level = "warning" if notices or (stop and stop.at - now <= max(stops.warnings, default=0) * 60) else "ok"
    return {
        "user": user,
        "server": server,
        "at": now,
        "interval": sample_interval,
        "status": {"text": status_text(gpus, kind), "level": level},
        "gpus": gpus,
        "kind": kind,
        "since": since,
        "rule": rule,
        "budget": None if budget is None else {
            "sentence": budget.sentence() + ".", "used": round(budget.used, 4), "limit": budget.limit,
            "left": round(budget.left, 4), "renews": budget.period.renewal(budget.end, budget.tz),
            "used_words": f"{hours(budget.used)} of {hours(budget.limit)} GPU-hours used"},
        "stop": None if stop is None else {"why": stop.why, "at": stop.at, "sentence": stop.sentence},
        "idle_note": note,
        "notices": notices,
    }
