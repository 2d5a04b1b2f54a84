"""Who holds which GPU, for admins without Docker access: a JupyterHub service.

Run it as a hub-managed service::

    c.JupyterHub.services.append(gpudockerspawner.service.hub_service())
    c.JupyterHub.load_roles.append(gpudockerspawner.service.hub_role())

Admins (and tokens with ``access:services!service=gpus``) then read
``/services/gpus/`` (a table) and ``/services/gpus/api/assignments`` (JSON). The service reads
the assignment from each server's state in the hub database, one of the three records that
GPUDockerSpawner keeps in agreement (database, container label, in-process pool).
"""

from __future__ import annotations

import html
import json
import os
import signal
import sys
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import IOLoop

NAME = "gpus"
PORT = 10101


def hub_service(name: str = NAME, port: int = PORT, host: str = "127.0.0.1") -> dict:
    """The service's entry in ``JupyterHub.services``; ``host`` is how the proxy reaches the hub's container
    (the loopback where the proxy runs beside the hub)."""
    return {
        "name": name,
        "url": f"http://{host}:{port}",
        "command": [sys.executable, "-m", "gpudockerspawner.service"],
        "oauth_no_confirm": True,
        "display": True,
    }


def hub_role(name: str = NAME) -> dict:
    # The service's own token reads users and their servers' state (where the assignment is kept).
    return {"name": f"{name}-service", "scopes": ["list:users", "read:users", "read:servers", "admin:server_state"], "services": [name]}


async def assignments() -> dict:
    """{"gpus": {gpu: [owner, ...]}, "servers": [{"user", "server", "gpus", "ready"}]} from the hub API."""
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


class AssignmentsAPI(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(await assignments()))


class AssignmentsPage(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    async def get(self):
        data = await assignments()
        on_nodes = any(s["node"] for s in data["servers"])
        rows = "".join(
            f"<tr><td>{html.escape(s['user'])}</td><td>{html.escape(s['server'] or '(default)')}</td>"
            + (f"<td>{html.escape(s['node'] or '')}</td>" if on_nodes else "")
            + f"<td>{html.escape(', '.join(s['gpus']) or 'CPU only')}</td><td>{'yes' if s['ready'] else 'starting'}</td></tr>"
            for s in data["servers"]
        )
        columns = ["user", "server"] + (["node"] if on_nodes else []) + ["GPUs", "ready"]
        self.write(
            "<!doctype html><title>GPU assignments</title><h1>GPU assignments</h1><table border=1 cellpadding=4><tr>"
            + "".join(f"<th>{column}</th>" for column in columns) + "</tr>"
            + (rows or f"<tr><td colspan={len(columns)}>no running servers</td></tr>") + "</table>"
        )


def make_app() -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{NAME}/")
    return web.Application(
        [
            (prefix, AssignmentsPage),
            (url_path_join(prefix, "api/assignments"), AssignmentsAPI),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=os.urandom(32),
    )


def main() -> None:
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{PORT}"))
    # Reached by name (a proxy in another container): listen on the container's addresses.
    address = url.hostname if url.hostname in ("127.0.0.1", "localhost") else ""
    make_app().listen(url.port or PORT, address=address)
    # The hub stops its services with SIGINT, then SIGTERM: both end this one at once, also where whoever
    # started the hub left SIGINT ignored (as a shell does for a job it runs in the background).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
