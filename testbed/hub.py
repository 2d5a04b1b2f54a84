"""A client of a deployed hub over HTTPS, verifying its certificate, with a token of the tests' own."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

import requests
import websocket

from testbed.wait import until


def progress_events(stream: requests.Response):
    """The events of the hub's progress stream for a starting server (server-sent events: a JSON object on each
    ``data:`` line), as they come."""
    for line in stream.iter_lines(decode_unicode=True):
        if line.startswith("data:"):
            yield json.loads(line.removeprefix("data:"))


class HubClient:
    def __init__(self, url: str, ca_file: Path | None, token: str | None = None, server_hostname: str | None = None):
        self.url = url.rstrip("/")
        self.ca_file = str(ca_file) if ca_file else True
        self.session = requests.Session()
        self.server_hostname = server_hostname
        if server_hostname:
            # Reach the host by address, check its certificate for the hub's name (no DNS needed).
            self.session.mount("https://", _NamedHostAdapter(server_hostname))
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        # verify per request: a session's verify loses to $REQUESTS_CA_BUNDLE.
        return self.session.request(method, self.url + path, timeout=30, verify=self.ca_file, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.request(method, f"/hub/api{path}", **kwargs)

    def version(self) -> str:
        response = self.api("GET", "/")
        response.raise_for_status()
        return response.json()["version"]

    def wait_until_answering(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.version()
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def user_server_with_file(self, user: str, path: str, text: str) -> None:
        """Create ``user``, start their server and write ``path`` through the proxy."""
        self.ensure_user(user)
        self.start_server(user)
        self.write_file(user, path, text)

    def ensure_user(self, name: str) -> None:
        response = self.api("POST", f"/users/{name}")
        if response.status_code not in (201, 409):
            response.raise_for_status()

    def user(self, name: str) -> dict | None:
        response = self.api("GET", f"/users/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def start_server(self, name: str, timeout: float = 180, options: dict | None = None) -> dict:
        """Start ``name``'s server (with the spawn form's ``options``, like ``{"gpu": "cpu"}``), wait until ready."""
        response = self.api("POST", f"/users/{name}/server", json=options or {})
        if response.status_code not in (201, 202, 400):  # 400: already running
            response.raise_for_status()

        def ready() -> dict | None:
            server = self.servers(name).get("")
            return server if server and server.get("ready") else None

        return until(ready, timeout, f"server of {name} ready")

    def ready_by_progress(self, name: str, timeout: float = 180) -> dict:
        """Wait for ``name``'s starting server as the spawn page does: on the hub's progress events (an EventSource
        stream, no polling) until one says ready; that event."""
        with self.session.get(f"{self.url}/hub/api/users/{name}/server/progress", stream=True, timeout=timeout,
                              verify=self.ca_file) as response:
            response.raise_for_status()
            for event in progress_events(response):
                if event.get("ready"):
                    return event
                if event.get("failed"):
                    raise AssertionError(f"server of {name} failed to start: {event.get('message')}")
        raise AssertionError(f"the progress of {name}'s server ended without it being ready")

    def stop_server(self, name: str, timeout: float = 60) -> None:
        self.api("DELETE", f"/users/{name}/server")
        until(lambda: not self.servers(name), timeout, f"server of {name} gone")

    def write_file(self, user: str, path: str, text: str) -> None:
        response = self.request(
            "PUT", f"/user/{user}/api/contents/{path}", json={"type": "file", "format": "text", "content": text}
        )
        response.raise_for_status()

    def read_file(self, user: str, path: str) -> str:
        response = self.request("GET", f"/user/{user}/api/contents/{path}", params={"content": 1})
        response.raise_for_status()
        return response.json()["content"]

    def gpu_table(self, timeout: float = 30) -> dict:
        """The GPU table's JSON. The service restarts with the hub, behind a proxy that kept its route: for a few
        seconds after the hub answers, the proxy may answer 503 for it."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get("/services/gpus/api/assignments")
            if response.status_code == 200 or time.monotonic() > deadline:
                response.raise_for_status()
                return response.json()
            time.sleep(0.5)

    def servers(self, name: str) -> dict:
        """``name``'s servers as the hub lists them (none: ``{}``)."""
        return (self.user(name) or {}).get("servers") or {}

    def kernel(self, user: str) -> KernelChannel:
        """A new kernel on ``user``'s server and its websocket, opened through the proxy as JupyterLab does."""
        response = self.request("POST", f"/user/{user}/api/kernels", json={})
        response.raise_for_status()
        kernel_id = response.json()["id"]
        url = self.url.replace("https://", "wss://", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
        sslopt = {"cert_reqs": ssl.CERT_REQUIRED}
        if self.ca_file is not True:
            sslopt["ca_certs"] = self.ca_file
        if self.server_hostname:
            sslopt["server_hostname"] = self.server_hostname
        socket = websocket.create_connection(url, timeout=30, sslopt=sslopt, suppress_origin=True,
                                             header=[f"Authorization: {self.session.headers['Authorization']}"])
        return KernelChannel(socket)


class KernelChannel:
    """One kernel's websocket (Jupyter's JSON messages), kept open across calls."""

    def __init__(self, socket: websocket.WebSocket):
        self.socket = socket
        self.session = uuid.uuid4().hex

    def evaluate(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` on the kernel; the text of its result."""
        msg_id = uuid.uuid4().hex
        self.socket.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session, "username": "",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False},
        }))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return message["content"]["data"]["text/plain"]
            if message["msg_type"] == "error":
                raise RuntimeError(f"{code!r} failed: {message['content']['ename']}: {message['content']['evalue']}")
        raise TimeoutError(f"no result for {code!r} within {timeout}s")

    def close(self) -> None:
        self.socket.close()


class _NamedHostAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, server_hostname: str):
        self.server_hostname = server_hostname
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self.server_hostname
        super().init_poolmanager(*args, **kwargs)
