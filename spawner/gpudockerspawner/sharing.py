"""The page on which a person shares their running server (its GPU included) with another person, a group, or by a
link, sees who has access, and revokes it: JupyterHub's shares (5.0+), which JupyterHub gives no page of its own.

``/services/gpus/share``, in the hub's look, part of the GPU service. Every change is made with the person's own
token (the one their browser holds for this service, with the scopes ``shares!user``, ``read:users:name`` and
``read:groups:name`` that config.py's ``configure_sharing`` lets the service ask for): the service can share nothing
its visitor could not share themselves through the hub's REST API. A guest opens the server on its owner's origin and
logs in as themselves (JupyterHub's share flow); they start no server and hold no GPU of their own, and the owner's
hold alone is counted.
"""

from __future__ import annotations

import json
import os

from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from gpudockerspawner.service import GPUHandler

# "1" where the hub lets people share their servers (the deploy's server_sharing).
SHARING_ENV = "GPUDOCKERSPAWNER_SHARING"
# What the form may ask: share with a user or a group, make a link, revoke a user's, a group's, or every link.
ACTIONS = {"user", "group", "link", "revoke-user", "revoke-group", "revoke-links"}
# A share link lasts this long (JupyterHub's default for a share code is a day).
LINK_LIFETIME = 7 * 86400


def sharing_on() -> bool:
    return os.environ.get(SHARING_ENV) == "1"


class SharePage(GPUHandler):
    async def hub(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """The hub's REST API, asked with the visitor's own token: (status, JSON answer)."""
        token = self.hub_auth.get_token(self)
        request = HTTPRequest(url_path_join(os.environ["JUPYTERHUB_API_URL"], path), method=method,
                              headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                              body=None if body is None else json.dumps(body), allow_nonstandard_methods=True,
                              request_timeout=30)
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {"message": response.body.decode(errors="replace")[:300]}
        return response.code, answer

    async def show(self, said: str = "", failed: str = "", link: str = "") -> None:
        name = self.current_user["name"]
        table = await self.settings["round_assignments"].get()
        running = any(server["user"] == name and server["server"] == "" for server in table["servers"])
        shares, codes = [], []
        if sharing_on():
            status, answer = await self.hub("GET", f"shares/{name}/")
            shares = answer.get("items", []) if status == 200 else []
            for share in shares:  # the hub's ISO 8601 time as the hub's pages say a time
                share["since"] = (share.get("created_at") or "")[:16].replace("T", " ") + " UTC"
            status, answer = await self.hub("GET", f"share-codes/{name}/")
            codes = answer.get("items", []) if status == 200 else []
        self.render_page("share.html", sharing=sharing_on(), running=running, shares=shares, codes=codes,
                         said=said, failed=failed, link=link, server_url=url_path_join(
                             os.environ.get("JUPYTERHUB_BASE_URL", "/"), "user", name) + "/")

    @web.authenticated
    async def get(self):
        await self.show()

    @web.authenticated
    async def post(self):
        if not sharing_on():
            raise web.HTTPError(403, "Sharing servers is off on this hub.")
        name = self.current_user["name"]
        action, whom = self.get_body_argument("action", ""), self.get_body_argument("name", "").strip()
        if action not in ACTIONS:
            raise web.HTTPError(400, f"action = {action!r}: one of {', '.join(sorted(ACTIONS))}")
        if action in ("user", "group", "revoke-user", "revoke-group") and not whom:
            raise web.HTTPError(400, "name: whom to share with (a user's or a group's name)")
        kind = "group" if action.endswith("group") else "user"
        if action in ("user", "group"):
            status, answer = await self.hub("POST", f"shares/{name}/", {kind: whom})
            said = f"Your server is shared with {kind} {whom}."
        elif action in ("revoke-user", "revoke-group"):
            status, answer = await self.hub("PATCH", f"shares/{name}/", {kind: whom})
            said = f"{kind.capitalize()} {whom} no longer has access to your server."
        elif action == "link":
            status, answer = await self.hub("POST", f"share-codes/{name}/", {"expires_in": LINK_LIFETIME})
            if status == 200:
                # Shown once, on this page, never put into an address: whoever has it gets access.
                await self.show(said="Anyone you give this link to may open your server, after logging in, "
                                     "for 7 days or until you revoke the links.",
                                link=answer.get("full_accept_url") or answer.get("accept_url", ""))
                return
            said = ""
        else:
            status, answer = await self.hub("DELETE", f"share-codes/{name}/")
            said = "Every share link of your server is revoked."
        if status >= 400:
            await self.show(failed=f"The hub refused: {answer.get('message') or status}")
            return
        await self.show(said=said)
