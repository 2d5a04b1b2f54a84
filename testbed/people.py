"""Simulated people for load tests, in the manner of JupyterHub's hubtraf: each one signs up, logs in with the
login form, starts a server from the spawn form, waits for it as the spawn-pending page does, opens it (the
OAuth hand-over to the server) and runs code on a kernel over its websocket. Plain HTTP as a browser sends
it (form posts with the _xsrf cookie's value, cookies only: no API token), so that what a person meets is
what gets loaded; only against the hub under test."""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from urllib.parse import urlsplit

import requests
import websocket

from testbed.hub import KernelChannel, _NamedHostAdapter, progress_events

TIMEOUT = 60  # seconds for one request


@dataclass
class Visit:
    """What one person went through, with the time each step took."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None


class Person:
    def __init__(self, url: str, ca_file: str, name: str, password: str, server_hostname: str | None = None):
        self.url = url.rstrip("/")
        self.ca_file = ca_file
        self.name = name
        self.password = password
        self.server_hostname = server_hostname
        self.session = requests.Session()
        if server_hostname:
            self.session.mount("https://", _NamedHostAdapter(server_hostname))

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            return self.session.request(method, self.url + path, verify=self.ca_file, **kwargs)
        except requests.ConnectionError as error:
            # The proxy closes a kept-alive connection after 5 s idle; one that closes as a request goes out
            # ends without an answer. A browser sends that request again on a new connection, so we do too.
            if not _closed_unanswered(error):
                raise
            return self.session.request(method, self.url + path, verify=self.ca_file, **kwargs)

    def _xsrf(self, path: str = "/hub/") -> str:
        """The _xsrf cookie's value that a page under ``path`` put in the form or header, as its scripts do."""
        for cookie in self.session.cookies:
            if cookie.name == "_xsrf" and cookie.path.rstrip("/") == path.rstrip("/"):
                return cookie.value
        raise AssertionError(f"{self.name}: no _xsrf cookie for {path}")

    def _form(self, path: str, data: dict) -> requests.Response:
        self._request("GET", path).raise_for_status()
        response = self._request("POST", path, data={**data, "_xsrf": self._xsrf()}, allow_redirects=False)
        if response.status_code >= 400:
            raise AssertionError(f"{self.name}: POST {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def sign_up(self) -> None:
        page = self._form("/hub/signup", {"username": self.name, "signup_password": self.password,
                                          "signup_password_confirmation": self.password})
        if "information has been sent to the admin" not in page.text and "successfully" not in page.text:
            raise AssertionError(f"{self.name}: the sign-up page says {_alert(page.text)!r}")

    def log_in(self) -> None:
        answer = self._form("/hub/login", {"username": self.name, "password": self.password})
        if answer.status_code != 302:
            raise AssertionError(f"{self.name}: the login page says {_alert(answer.text)!r}")

    def approve(self, name: str) -> None:
        """As an admin, logged in: approve ``name``'s sign-up, as the link on /hub/authorize does."""
        self._request("GET", f"/hub/authorize/{name}").raise_for_status()

    def start_server(self, profile: str) -> None:
        """Pick ``profile`` in the spawn form and send it, as the Start button does."""
        form = self._request("GET", "/hub/spawn")
        form.raise_for_status()
        if 'name="image"' not in form.text and (f"/spawn-pending/{self.name}" in form.url
                                                or f"/user/{self.name}/" in form.url):
            return  # nothing to choose on this host: the hub started the server at once (and it may be up already)
        if f'value="{profile}"' not in form.text:
            raise AssertionError(f"{self.name}: the spawn form offers no {profile!r}")
        sent = self._request("POST", f"/hub/spawn/{self.name}", data={"image": profile, "_xsrf": self._xsrf()},
                             allow_redirects=False)
        if sent.status_code != 302:
            raise AssertionError(f"{self.name}: the spawn form answered {sent.status_code}: {_alert(sent.text)!r}")

    def wait_until_ready(self, timeout: float) -> None:
        """Wait as the spawn-pending page does: on the hub's progress events, the EventSource it opens with the
        _xsrf token in its URL, until one says ready; if the stream ends first, open it again, as the page does
        when it reloads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self._request("GET", f"/hub/api/users/{self.name}/server/progress",
                                   params={"_xsrf": self._xsrf()}, stream=True,
                                   timeout=(TIMEOUT, max(1.0, deadline - time.monotonic()))) as stream:
                    if stream.status_code == 400:  # neither running nor starting
                        raise AssertionError(f"{self.name}: the hub stopped trying to start the server")
                    stream.raise_for_status()
                    for event in progress_events(stream):
                        if event.get("ready"):
                            return
                        if event.get("failed"):
                            raise AssertionError(f"{self.name}: the spawn page says {event.get('message')!r}")
            except (requests.RequestException, ValueError):
                time.sleep(1)
        raise AssertionError(f"{self.name}: the server was not ready within {timeout:.0f} s")

    def run_code(self, code: str) -> str:
        """Open one's server (the hub hands the browser over with OAuth), start a kernel and run ``code``."""
        base = f"/user/{self.name}/"
        # JupyterLab's page: the hub hands the browser over (OAuth) and the server sets its _xsrf cookie,
        # which its API wants back in a header.
        opened = self._request("GET", f"{base}lab")
        if opened.status_code != 200 or urlsplit(opened.url).path != f"{base}lab":
            raise AssertionError(f"{self.name}: opening the server ended at {opened.url} ({opened.status_code})")
        xsrf = self._xsrf(base)
        kernel = self._request("POST", f"{base}api/kernels", json={}, headers={"X-XSRFToken": xsrf})
        kernel.raise_for_status()
        url = (self.url.replace("https://", "wss://", 1) + f"{base}api/kernels/{kernel.json()['id']}/channels"
               f"?_xsrf={xsrf}")
        sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": self.ca_file}
        if self.server_hostname:
            sslopt["server_hostname"] = self.server_hostname
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies
                            if base.startswith(c.path.rstrip("/") + "/") or c.path == "/")
        channel = KernelChannel(websocket.create_connection(url, timeout=TIMEOUT, sslopt=sslopt, suppress_origin=True,
                                                            header=[f"Cookie: {cookies}"]))
        try:
            return channel.evaluate(code, timeout=TIMEOUT)
        finally:
            channel.close()

    def visit(self, profile: str, code: str, expected: str, ready_within: float) -> Visit:
        """Log in, start a server on ``profile``, run ``code``: each step timed; the first failure kept."""
        visit = Visit(self.name)
        steps = (("log in", self.log_in), ("start", lambda: self.start_server(profile)),
                 ("ready", lambda: self.wait_until_ready(ready_within)),
                 ("run code", lambda: self._check(code, expected)))
        for step, action in steps:
            started = time.perf_counter()
            try:
                action()
            except (AssertionError, requests.RequestException, websocket.WebSocketException, OSError,
                    RuntimeError, TimeoutError) as error:
                visit.failed = f"{step}: {error}"
                return visit
            visit.seconds[step] = time.perf_counter() - started
        return visit

    def _check(self, code: str, expected: str) -> None:
        result = self.run_code(code)
        if result != expected:
            raise AssertionError(f"{self.name}: {code!r} gave {result!r}, not {expected!r}")


def _closed_unanswered(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a connection the server closed before any byte of an answer."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, (RemoteDisconnected, ConnectionResetError)):
            return True
        error = next((arg for arg in getattr(error, "args", ()) if isinstance(arg, BaseException)),
                     error.__cause__ or error.__context__)
        seen += 1
    return False


def _alert(page: str) -> str:
    """The message a page shows a person (its alert box), or its start."""
    match = re.search(r'class="alert[^"]*"[^>]*>(.*?)</div>', page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip() if match else page[:200]
