"""``<server>/jupyterhub-gpu/view``: this server's own GPU view, from the hub's GPU service, for its JupyterLab."""

from __future__ import annotations

import json
import os

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from jupyterhub_gpu_lab.hub_view import VIEW_URL_ENV, HubView, unavailable


class ViewHandler(APIHandler):
    @web.authenticated
    async def get(self):
        source: HubView | None = self.settings.get("jupyterhub_gpu_view")
        self.set_header("Cache-Control", "no-store")
        if source is None:
            self.finish(json.dumps(unavailable(f"${VIEW_URL_ENV} is not set: this server's hub shows no GPU view")))
            return
        self.finish(json.dumps(await source.get()))


def setup_handlers(server_app) -> None:
    web_app = server_app.web_app
    url, token = os.environ.get(VIEW_URL_ENV), os.environ.get("JUPYTERHUB_API_TOKEN")
    if url and token:
        web_app.settings["jupyterhub_gpu_view"] = HubView(url, token, os.environ.get("JUPYTERHUB_SERVER_NAME", ""))
    route = url_path_join(web_app.settings["base_url"], "jupyterhub-gpu", "view")
    web_app.add_handlers(".*$", [(route, ViewHandler)])
