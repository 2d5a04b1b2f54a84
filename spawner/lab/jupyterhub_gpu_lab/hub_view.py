"""This server's own GPU view, as the hub's GPU service answers it (``api/me``), asked at most once per sampling
interval."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

# Set by the hub for each server (gpudockerspawner.service.VIEW_URL_ENV): the GPU service's api/me for servers.
VIEW_URL_ENV = "JUPYTERHUB_GPU_VIEW_URL"
# Seconds to wait for the service, and between questions where it gives no sampling interval.
TIMEOUT, DEFAULT_INTERVAL = 10.0, 5.0


def unavailable(why: str) -> dict:
    return {"available": False, "error": why}


class HubView:
    """The GPU service's answer for this server, asked again once it is a sampling interval old: any number of open
    JupyterLab tabs cost the hub one question per interval. A failed question is answered with why, and asked again
    at the next interval."""

    def __init__(self, url: str, token: str, server_name: str, client: AsyncHTTPClient | None = None):
        self.url = url + ("&" if "?" in url else "?") + urlencode({"server": server_name})
        self.token = token
        self.client = client or AsyncHTTPClient()
        self.answer: dict | None = None
        self.at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> dict:
        async with self._lock:
            interval = (self.answer or {}).get("interval") or DEFAULT_INTERVAL
            if self.answer is None or time.monotonic() - self.at >= interval:
                self.answer = await self._ask()
                self.at = time.monotonic()
            return self.answer

    async def _ask(self) -> dict:
        try:
            response = await self.client.fetch(self.url, headers={"Authorization": f"token {self.token}"},
                                               request_timeout=TIMEOUT)
        except HTTPClientError as error:
            body = error.response.body if error.response is not None else b""
            try:
                message = json.loads(body).get("message") or str(error)
            except ValueError:
                message = str(error)
            return {**self._last_or_empty(), "error": f"The hub's GPU service answered {error.code}: {message}"}
        except OSError as error:
            return {**self._last_or_empty(), "error": f"The hub's GPU service does not answer: {error}"}
        return {"available": True, **json.loads(response.body)}

    def _last_or_empty(self) -> dict:
        """What was last known, marked as such (an answer that fails keeps the status bar's last words)."""
        if self.answer and self.answer.get("available"):
            return self.answer
        return {"available": True, "at": time.time(), "interval": DEFAULT_INTERVAL,
                "status": {"text": "GPU: no answer", "level": "ok"}, "gpus": [], "kind": "", "since": None,
                "rule": "", "budget": None, "stop": None, "idle_note": "", "notices": []}
