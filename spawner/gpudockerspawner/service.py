"""The GPU service: who holds which GPU, how hard each GPU works, and GPU-hours per person; a JupyterHub service.

Run it as a hub-managed service::

    c.JupyterHub.services.append(gpudockerspawner.service.hub_service(environment=...))
    c.JupyterHub.load_roles += gpudockerspawner.service.hub_roles()

Pages, in the hub's own look (its page template, navigation bar and light or dark theme):

- ``/services/gpus/``: each GPU with its model, memory, utilisation now and over the last hour, who holds it and
  since when. Admins see every GPU and server; anyone else their own GPUs and how many are free.
- ``/services/gpus/usage``: GPU-hours by person, group and GPU this week, this month or over a chosen range
  (admins).

APIs (JSON; admins, and tokens with ``access:services!service=gpus`` of an admin):
``api/assignments`` (who holds which GPU), ``api/gpus`` (the figures and the last hour), and
``api/usage?since=&until=&format=json|csv`` (every hold in the range, with the totals). And for anyone, their own:
``api/me`` (their server as its JupyterLab shows it, server_view.py), which user servers ask with their own token
at a port of the service's own for them (``ENV["servers_port"]``), where it is all that is served.

Assignments come from each server's state in the hub database, one of the three records that GPUDockerSpawner keeps
in agreement (database, container label, in-process pool). The figures come from the GPU samplers
(``sampler.py``), polled by this service (``figures.py``); the GPU-hours from the spawners' usage record
(``usage.py``). The environment says where each is (``ENV``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import IOLoop

from gpudockerspawner.budget_standings import Budgets
from gpudockerspawner.budgets import Period, hours
from gpudockerspawner.figures import Figures, idle_since, key_for
from gpudockerspawner.plot import polyline
from gpudockerspawner.server_view import Stops, gpu_figures, view
from gpudockerspawner.usage import UsageLog, report, report_csv, totals
from gpudockerspawner.words import duration

NAME = "gpus"
PORT = 10101
TEMPLATES = Path(__file__).with_name("templates")
# What the service reads from its environment (hub_service's ``environment`` sets them).
ENV = {
    "samplers": "GPUDOCKERSPAWNER_SAMPLERS",  # JSON list of the samplers' URLs
    "on_nodes": "GPUDOCKERSPAWNER_SAMPLES_ON_NODES",  # "1" on a cluster: GPUs known per node
    "interval": "GPUDOCKERSPAWNER_SAMPLE_INTERVAL",  # seconds between rounds
    "busy_at": "GPUDOCKERSPAWNER_GPU_BUSY_AT",  # percent utilisation from which a GPU counts as busy
    "figures": "GPUDOCKERSPAWNER_FIGURES",  # where each round's snapshot goes (for the gauges and the cullers)
    "usage": "GPUDOCKERSPAWNER_USAGE_DB",  # the spawners' usage record
    # JSON: the GPU budgets' settings, as the spawner has them (gpu_groups, gpu_hours, budget_period,
    # budget_timezone); see Budgets.
    "budgets": "GPUDOCKERSPAWNER_BUDGETS",
    # JSON: what the cullers go by (server_view.Stops), for each server's view of its own coming stop.
    "stops": "GPUDOCKERSPAWNER_STOPS",
    # The port on which the service answers user servers (api/me only): below 1024, as the hub's API port, so that
    # no user container can listen there, and the host firewall lets servers reach it (none where empty).
    "servers_port": "GPUDOCKERSPAWNER_SERVERS_PORT",
}
# Where a user server finds its own view (``api/me`` on the servers' port), set in its environment; the lab
# extension's server part reads it.
VIEW_URL_ENV = "JUPYTERHUB_GPU_VIEW_URL"
# What an admin may grant at once, and say of it.
MOST_HOURS_GRANTED, LONGEST_NOTE = 10_000, 500


def hub_service(name: str = NAME, port: int = PORT, host: str = "127.0.0.1", environment: dict | None = None) -> dict:
    """The service's entry in ``JupyterHub.services``; ``host`` is how the proxy reaches the hub's container
    (the loopback where the proxy runs beside the hub)."""
    return {
        "name": name,
        "url": f"http://{host}:{port}",
        "command": [sys.executable, "-m", "gpudockerspawner.service"],
        "environment": environment or {},
        "oauth_no_confirm": True,
        "display": True,
    }


def hub_roles(name: str = NAME) -> list[dict]:
    """The service's own token reads users and their servers' state (where the assignment is kept); every user may
    open the service's page (which shows them their own GPUs only)."""
    return [
        {"name": f"{name}-service", "scopes": ["list:users", "read:users", "read:servers", "admin:server_state"],
         "services": [name]},
        {"name": "user", "scopes": ["self", f"access:services!service={name}"]},
    ]


async def assignments() -> dict:
    """{"gpus": {gpu: [owner, ...]}, "servers": [{"user", "server", "gpus", "ready", "node"}]} from the hub API."""
    api_url = os.environ["JUPYTERHUB_API_URL"]
    request = HTTPRequest(
        url_path_join(api_url, "users") + "?state=active",
        headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"},
    )
    response = await AsyncHTTPClient().fetch(request)
    servers, gpus = [], {}
    for user in json.loads(response.body):
        for server_name, server in (user.get("servers") or {}).items():
            state = server.get("state") or {}
            held = state.get("gpus", [])
            servers.append({"user": user["name"], "server": server_name, "gpus": held, "ready": server.get("ready"),
                            # On a cluster, the Swarm node the server runs on (GPU ids are per node).
                            "node": state.get("node")})
            for gpu in held:
                key = f"{state['node']}/{gpu}" if state.get("node") else gpu
                gpus.setdefault(key, []).append(f"{user['name']}/{server_name}")
    return {"gpus": dict(sorted(gpus.items())), "servers": sorted(servers, key=lambda s: (s["user"], s["server"]))}


async def people() -> list[dict]:
    """Every user of the hub, with their groups (a budget depends on them)."""
    request = HTTPRequest(url_path_join(os.environ["JUPYTERHUB_API_URL"], "users"),
                          headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"})
    response = await AsyncHTTPClient().fetch(request)
    return [{"name": user["name"], "groups": user.get("groups") or []} for user in json.loads(response.body)]


class RoundAssignments:
    """The hub's answer to who holds which GPU, asked once per sampling round and shared by every page view in
    it: the GPU page is open to every user, and each view asking the hub anew would let anyone load the hub's
    API by reloading. Concurrent views share one request."""

    def __init__(self, fetch=assignments, max_age: float = 5.0):
        self.fetch, self.max_age = fetch, max_age
        self.table: dict | None = None
        self.at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> dict:
        async with self._lock:
            if self.table is None or time.monotonic() - self.at >= self.max_age:
                self.table = await self.fetch()
                self.at = time.monotonic()
            return self.table


def gpu_rows(figures: Figures | None, table: dict, holds: dict[str, float]) -> list[dict]:
    """One row per GPU: the samplers' GPUs, and any GPU a server holds that no sampler reports; a GPU in MIG mode
    followed by its MIG devices, which are what is handed out (``sliced``: the GPU itself is not)."""
    snapshot = figures.snapshot() if figures else {"gpus": {}}
    rows: dict[str, dict] = {key: {"key": key, **figure, "holders": [], "since": None, "hour": figures.hour(key)}
                             for key, figure in snapshot["gpus"].items()}
    for server in table["servers"]:
        owner = f"{server['user']}/{server['server']}"
        for gpu in server["gpus"]:
            key = key_for(snapshot, gpu, server["node"] or "") or (f"{server['node']}/{gpu}" if server["node"] else gpu)
            row = rows.setdefault(key, {"key": key, "uuid": gpu, "node": server["node"] or "", "holders": [],
                                        "since": None, "hour": []})
            row["holders"].append(owner)
            row["since"] = min(filter(None, [row["since"], holds.get(owner)]), default=None)
    parents = {(row.get("node") or "", row["parent"]) for row in rows.values() if row.get("parent")}
    for row in rows.values():
        row["sliced"] = (row.get("node") or "", row.get("uuid")) in parents
    return sorted(rows.values(), key=lambda row: (row.get("node") or "", _index_order(row.get("index")), row["key"]))


def free_of(rows: list[dict]) -> tuple[int, int]:
    """How many of the rows' GPUs are free, of how many are handed out (a GPU in MIG mode is not: its slices are)."""
    units = [row for row in rows if not row["sliced"]]
    return sum(1 for row in units if not row["holders"]), len(units)


def _index_order(index: str | None) -> list[int]:
    """nvidia-smi's "1", or "0:2" for GPU 0's MIG device 2, in the driver's order."""
    return [int(part) for part in (index or "0").split(":") if part.isdigit()]


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp)) if timestamp else ""


def _gib(value: float | None) -> str:
    return "" if value is None else f"{value / 2**30:.1f} GiB"


class TemplateUser:
    """What the hub's page template reads of the user."""

    def __init__(self, model: dict):
        self.name = model["name"]
        self.json_escaped_name = json.dumps(self.name)[1:-1]


class GPUHandler(HubOAuthenticated, web.RequestHandler):
    # An API answers its errors as JSON; a page in the hub's look.
    json_errors = False

    @property
    def figures(self) -> Figures | None:
        return self.settings.get("figures")

    @property
    def usage(self) -> UsageLog | None:
        return self.settings.get("usage")

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user.get("admin"))

    def admin_only(self) -> None:
        # A service's token (as the deploy's ops token) got access here from the hub's admins.
        if not self.is_admin and self.current_user.get("kind") != "service":
            raise web.HTTPError(403, "Only the hub's admins see everyone's GPUs.")

    def open_holds(self) -> dict[str, float]:
        return {f"{h.user}/{h.server}": h.started for h in (self.usage.open_holds() if self.usage else [])}

    def write_error(self, status_code: int, **kwargs) -> None:
        """The refusal's own words (not only "403: Forbidden"), in the hub's look where the user is known."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        user = getattr(self, "_current_user", None)  # as authenticated for this request, never asked again
        if self.json_errors or not user:
            self.finish({"status": status_code, "message": message})
            return
        self.finish(render(self.settings["jinja"], "gpus-error.html", user, bool(user.get("admin")),
                           self.settings["prefix"], status_code=status_code, reason=self._reason, message=message))

    def render_page(self, name: str, **values) -> None:
        # The hub's XSRF token for the service's own forms (HubAuthenticated makes and checks it).
        token = self.xsrf_token
        self.write(render(self.settings["jinja"], name, self.current_user, self.is_admin, self.settings["prefix"],
                          token.decode() if isinstance(token, bytes) else token, **values))

    @property
    def budgets(self) -> Budgets | None:
        return self.settings.get("budgets")


def render(jinja: jinja2.Environment, name: str, user: dict, is_admin: bool, service_prefix: str,
           xsrf_token: str = "", **values) -> str:
    """One of the service's pages, in the hub's page template with what that template reads."""
    base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    hub = url_path_join(base_url, "hub/")
    return jinja.get_template(name).render(
        base_url=hub, prefix=base_url, logo_url=hub, user=TemplateUser(user),
        static_url=lambda path, include_version=True: url_path_join(hub, "static", path),
        version_hash="", admin_access=is_admin, parsed_scopes={"admin-ui"} if is_admin else set(),
        services=[{"name": NAME, "href": service_prefix}],
        no_spawner_check=True, logout_url=url_path_join(hub, "logout"), login_url=url_path_join(hub, "login"),
        xsrf_token=xsrf_token, service_prefix=service_prefix, **values)


class GPUPage(GPUHandler):
    @web.authenticated
    async def get(self):
        table = await self.settings["round_assignments"].get()
        rows = gpu_rows(self.figures, table, self.open_holds())
        mine = [row for row in rows if any(h.split("/")[0] == self.current_user["name"] for h in row["holders"])]
        now = time.time()
        free, total = free_of(rows)
        self.render_page(
            "gpus.html", admin=self.is_admin, rows=rows if self.is_admin else mine,
            free=free, total=total,
            on_nodes=any(row.get("node") for row in rows) and bool(self.figures and self.figures.on_nodes),
            servers=table["servers"] if self.is_admin else [], sampled=bool(self.figures and self.figures.latest),
            errors=self.figures.errors if self.figures and self.is_admin else [],
            sparkline=lambda row: polyline(row["hour"], now), when=_when, gib=_gib,
            busy_at=self.figures.busy_at if self.figures else None, duration=duration,
            held_for=lambda row: duration(now - row["since"]) if row["since"] else "")


def _range(since: str | None, until: str | None) -> tuple[float, float]:
    """``since``/``until`` as ISO 8601 dates or times (UTC where no offset is given) or Unix seconds; default:
    this month so far."""
    def parse(value: str, name: str) -> float:
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise web.HTTPError(400, f"{name}={value!r}: give an ISO 8601 date or time (2026-11-01, "
                                     "2026-11-01T08:00Z) or Unix seconds") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()

    now = time.time()
    end = parse(until, "until") if until else now
    start = parse(since, "since") if since else month_start(now)
    if start >= end:
        raise web.HTTPError(400, f"since ({_when(start)}) is not before until ({_when(end)})")
    return start, end


def month_start(now: float) -> float:
    """The start of this month (UTC), as a monthly budget counts it."""
    return Period("month").bounds(now, timezone.utc)[0]


def week_start(now: float) -> float:
    """The start of this week, Monday 00:00 UTC, as a weekly budget counts it."""
    return Period("week").bounds(now, timezone.utc)[0]


class UsagePage(GPUHandler):
    @web.authenticated
    async def get(self):
        self.admin_only()
        now = time.time()
        since, until = _range(self.get_argument("since", None), self.get_argument("until", None))
        holds = self.usage.holds(since, until) if self.usage else []
        budgets = (self.budgets.rows(self.usage, await people(), now) if self.budgets and self.budgets.any
                   and self.usage else None)
        grants = self.usage.grants(month_start(now), now + 1) if self.usage else []
        # Just after this admin's grant (the form's redirect): what it was.
        mine = [g for g in grants if g["by"] == self.current_user["name"] and now - g["at"] < 60]
        granted = (f"{hours(mine[-1]['hours'])} GPU-hours to {mine[-1]['user'] or 'group ' + mine[-1]['group']}"
                   if self.get_argument("granted", "") and mine else "")
        self.render_page(
            "usage.html", since=since, until=until, totals=totals(holds, since, until), holds=holds, budgets=budgets,
            grants=grants, granted=granted, gpu_hours=hours,
            week=week_start(now), month=month_start(now), when=_when, hours=lambda seconds: f"{seconds / 3600:.2f}",
            day=lambda t: time.strftime("%Y-%m-%d", time.gmtime(t)), recorded=self.usage is not None)


class UsageAPI(GPUHandler):
    json_errors = True

    @web.authenticated
    def get(self):
        self.admin_only()
        since, until = _range(self.get_argument("since", None), self.get_argument("until", None))
        holds = self.usage.holds(since, until) if self.usage else []
        if self.get_argument("format", "json") == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="gpu-usage-{int(since)}-{int(until)}.csv"')
            self.write(report_csv(holds, since, until))
            return
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(report(holds, since, until)))


def read_grant(fields: dict) -> dict:
    """A grant as asked for (``user`` or ``group``, ``hours``, ``note``), checked; a 400 says what is wrong."""
    whom = {key: str(fields.get(key) or "").strip() for key in ("user", "group")}
    if bool(whom["user"]) == bool(whom["group"]):
        raise web.HTTPError(400, "name either a user or a group to grant GPU-hours to")
    try:
        amount = float(fields.get("hours"))
    except (TypeError, ValueError):
        amount = float("nan")
    if not 0 < amount <= MOST_HOURS_GRANTED:
        raise web.HTTPError(400, f"hours = {fields.get('hours')!r}; allowed: a number above 0, at most "
                                 f"{MOST_HOURS_GRANTED}")
    note = str(fields.get("note") or "")
    if len(note) > LONGEST_NOTE:
        raise web.HTTPError(400, f"the note is {len(note)} characters long; allowed: at most {LONGEST_NOTE}")
    return {**whom, "hours": amount, "note": note}


class GrantHandler(GPUHandler):
    def grant(self, fields: dict) -> dict:
        """Record extra GPU-hours for this period, by an admin; what was granted."""
        self.admin_only()
        if self.usage is None:
            raise web.HTTPError(409, "No usage record is kept on this hub: there is no budget to grant hours to")
        grant = read_grant(fields)
        self.usage.grant(grant["hours"], grant["note"], self.current_user["name"], user=grant["user"],
                         group=grant["group"])
        return grant


class GrantForm(GrantHandler):
    """The GPU-hours page's grant form (the hub's XSRF token guards it, as the hub's own forms)."""

    @web.authenticated
    def post(self):
        fields = {key: self.get_body_argument(key, "") for key in ("whom", "name", "hours", "note")}
        self.grant({"user" if fields["whom"] == "user" else "group": fields["name"], "hours": fields["hours"],
                    "note": fields["note"]})
        # The page says what was granted from the record, not from the address (which anyone could write).
        self.redirect(url_path_join(self.settings["prefix"], "usage") + "?granted=1")


class GrantsAPI(GrantHandler):
    json_errors = True

    @web.authenticated
    def get(self):
        self.admin_only()
        since, until = _range(self.get_argument("since", None), self.get_argument("until", None))
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"grants": self.usage.grants(since, until) if self.usage else []}))

    @web.authenticated
    def post(self):
        try:
            fields = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "send the grant as JSON: {\"user\": ..., \"hours\": ..., \"note\": ...}") from None
        if not isinstance(fields, dict):
            raise web.HTTPError(400, "send the grant as a JSON object")
        self.set_status(201)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(self.grant(fields)))


class AssignmentsAPI(GPUHandler):
    json_errors = True

    @web.authenticated
    async def get(self):
        self.admin_only()
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(await assignments()))


class FiguresAPI(GPUHandler):
    json_errors = True

    @web.authenticated
    async def get(self):
        self.admin_only()
        rows = gpu_rows(self.figures, await self.settings["round_assignments"].get(), self.open_holds())
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"interval": self.figures.interval if self.figures else None,
                               "errors": self.figures.errors if self.figures else [], "gpus": rows}))


class MeAPI(GPUHandler):
    """``api/me``: the token owner's own server as JupyterLab shows it (server_view.py); ``?server=`` names a named
    server. ``api/users/<name>`` is the same for ``name``, which must be the token's owner: a server's token (given
    ``access:services!service=gpus`` and no more, see config.py) reads its own person's view, nobody else's."""

    json_errors = True

    @web.authenticated
    async def get(self, name: str | None = None):
        owner = self.current_user["name"]
        if name is not None and name != owner:
            raise web.HTTPError(403, "A token reads its own owner's GPU view only.")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(await self.answer(owner, self.get_argument("server", ""))))

    async def answer(self, user: str, server: str) -> dict:
        now = time.time()
        table = await self.settings["round_assignments"].get()
        entry = next((s for s in table["servers"] if s["user"] == user and s["server"] == server), None)
        hold = next((h for h in self.usage.open_holds() if h.user == user and h.server == server),
                    None) if self.usage else None
        figures, held = self.figures, entry["gpus"] if entry else []
        snapshot = figures.snapshot() if figures else {"gpus": {}}
        node = (entry or {}).get("node") or ""
        gpus = []
        for gpu in held:
            key = key_for(snapshot, gpu, node)
            figure = snapshot["gpus"].get(key) if key else None
            gpus.append(gpu_figures(figure or {"uuid": gpu}, figures.hour(key) if key else [],
                                    figures.memory_hour(key) if key else [], now))
        since = hold.started if hold else None
        budget, budget_end = None, float("inf")
        budgets = self.budgets
        if hold and budgets is not None and budgets.any:
            budget, runs_out = budgets.held(self.usage, user, hold.group, len(held) * hold.share, now)
            budget_end = runs_out + 60 * float(budgets.grace)
        group = hold.group if hold else ""
        return view(user=user, server=server, gpus=gpus, since=since, kind=hold.kind if hold else "",
                    rule=(f"granted under group {group}'s rule" if group else "granted under the rule for everyone")
                    if held else "",
                    stops=self.settings["stops"],
                    idle_from=idle_since(snapshot, held, node, since or now) if held and figures else None,
                    budget=budget, budget_end=budget_end, now=now,
                    sample_interval=figures.interval if figures else 5.0)


def make_app(figures: Figures | None = None, usage: UsageLog | None = None,
             budgets: Budgets | None = None, stops: Stops | None = None, for_servers: bool = False,
             round_assignments: RoundAssignments | None = None) -> web.Application:
    """The service's pages and APIs; ``for_servers``: the user servers' own listener, ``api/me`` alone."""
    from gpudockerspawner.sharing import SharePage  # it builds on this module's handlers

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{NAME}/")
    mine = [(url_path_join(prefix, "api/me"), MeAPI), (url_path_join(prefix, r"api/users/([^/]+)"), MeAPI)]
    jinja = jinja2.Environment(loader=jinja2.FileSystemLoader([str(TEMPLATES),
                                                               str(Path(DATA_FILES_PATH) / "templates")]),
                               autoescape=True)
    return web.Application(
        [
            (prefix, GPUPage),
            (url_path_join(prefix, "usage"), UsagePage),
            (url_path_join(prefix, "api/assignments"), AssignmentsAPI),
            (url_path_join(prefix, "api/gpus"), FiguresAPI),
            (url_path_join(prefix, "api/usage"), UsageAPI),
            (url_path_join(prefix, "usage/grant"), GrantForm),
            (url_path_join(prefix, "api/grants"), GrantsAPI),
            (url_path_join(prefix, "share"), SharePage),
            *mine,
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ] if not for_servers else mine,
        cookie_secret=os.urandom(32), jinja=jinja, figures=figures, usage=usage, prefix=prefix, budgets=budgets,
        stops=stops or Stops(),
        round_assignments=round_assignments or RoundAssignments(max_age=figures.interval if figures else 5.0),
    )


def figures_from_environment() -> Figures | None:
    samplers = json.loads(os.environ.get(ENV["samplers"]) or "[]")
    if not samplers:
        return None
    return Figures(samplers, float(os.environ.get(ENV["interval"]) or 5), float(os.environ.get(ENV["busy_at"]) or 5),
                   on_nodes=bool(os.environ.get(ENV["on_nodes"])), snapshot_file=os.environ.get(ENV["figures"]) or None)


def main() -> None:
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{PORT}"))
    # Reached by name (a proxy in another container): listen on the container's addresses.
    address = url.hostname if url.hostname in ("127.0.0.1", "localhost") else ""
    figures = figures_from_environment()
    usage_db = os.environ.get(ENV["usage"])
    budgets = Budgets(json.loads(os.environ[ENV["budgets"]])) if os.environ.get(ENV["budgets"]) else None
    usage = UsageLog(usage_db) if usage_db else None
    stops = Stops.from_json(os.environ.get(ENV["stops"]))
    shared = RoundAssignments(max_age=figures.interval if figures else 5.0)
    make_app(figures, usage, budgets, stops, round_assignments=shared).listen(url.port or PORT, address=address)
    if os.environ.get(ENV["servers_port"]):
        # One question to the hub per round, for the pages and the servers' views alike.
        make_app(figures, usage, budgets, stops, for_servers=True, round_assignments=shared).listen(
            int(os.environ[ENV["servers_port"]]), address="")
    # The hub stops its services with SIGINT, then SIGTERM: both end this one at once, also where whoever
    # started the hub left SIGINT ignored (as a shell does for a job it runs in the background).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if figures is not None:
        IOLoop.current().add_callback(figures.run)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
