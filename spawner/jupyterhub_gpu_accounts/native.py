"""NativeAuthenticator as a jupyterhub-gpu hub runs it: admin accounts made by the deploy, bcrypt off the event
loop, failed logins throttled per name and address (``throttle``) from the address the client really has, unknown
names as costly to try as known ones, reserved names that nobody signs up under; and the shim that lets
nativeauthenticator 1.3.0 log people in on JupyterHub 6."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import math
import socket
import time
from pathlib import Path

import bcrypt
from nativeauthenticator import NativeAuthenticator, handlers
from nativeauthenticator.orm import UserInfo
from traitlets import Int, List, Set, Unicode

from jupyterhub_gpu_accounts.throttle import LoginThrottle

# How long the proxies' addresses, once looked up, are taken as they were (the proxy's container may be recreated).
PROXY_ADDRESSES_FOR = 30.0


class _NoStatsd:
    """Accepts the statsd calls that nativeauthenticator 1.3.0 makes and does nothing with them."""

    def timer(self, *args, **kwargs):
        return self

    def start(self):
        return self

    def stop(self, *args, **kwargs):
        pass

    def incr(self, *args, **kwargs):
        pass


def login_without_statsd() -> None:
    """JupyterHub 6 removed its statsd client (jupyterhub#5407); nativeauthenticator 1.3.0, its newest
    release, still times every login with it, so without this each login answers HTTP 500. The shim
    touches only nativeauthenticator's own login handler and stands aside once a release stops using
    statsd or JupyterHub brings it back."""
    if not hasattr(handlers.LoginHandler, "statsd"):
        handlers.LoginHandler.statsd = _NoStatsd()


class DeployedNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose admin accounts belong to the deploy.

    At hub start each admin's account is created, approved, from the password file that the deploy
    generated on the host (``<password_files_dir>/admin-password-<name>``); a rotated file (deleted and
    re-deployed) sets the new password. Nobody can sign up under an admin's name or a reserved one. An admin
    may still change their own password in the hub: a password file is applied once, not at every start.
    """

    password_files_dir = Unicode("/run/secrets", config=True, help="Where the admins' password files are.")
    applied_file = Unicode(
        "/srv/jupyterhub/admin-passwords-applied.json",
        config=True,
        help="The record of which password file was applied to which admin (fingerprints, never passwords).",
    )
    reserved_names = Set(Unicode(), config=True, help="Names nobody signs up under: the service accounts'.")
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="""Host names or addresses of the proxies in front of the hub, whose X-Forwarded-For (its last
        address, the one the proxy appended) gives a request's client address. Requests from anywhere else are
        taken to come from their TCP peer, whatever their headers say. Empty (the default): no proxy is trusted.""",
    )
    failed_logins_per_hour = Int(
        60,
        min=0,
        config=True,
        help="""Failed logins a name may have in an hour from all addresses together before addresses it never
        logged in from must wait; 0: no such ceiling. Per address, ``allowed_failed_logins`` and
        ``seconds_before_next_try`` apply (see ``LoginThrottle``).""",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        login_without_statsd()
        self.throttle = LoginThrottle(free_failures=self.allowed_failed_logins,
                                      max_delay=self.seconds_before_next_try, per_hour=self.failed_logins_per_hour)
        # Made now, not at the first unknown name: that login would take twice as long as any other.
        self._nobody = bcrypt.hashpw(b"nobody's password", bcrypt.gensalt())
        self._proxies, self._proxies_at = frozenset(), float("-inf")
        self.ensure_admin_accounts()

    async def authenticate(self, handler, data):
        """NativeAuthenticator 1.3's checks, in its order, with bcrypt's deliberate quarter second of CPU in a
        thread: in the hub's event loop, fifty people logging in at once held every request of the hub for up to
        10 s (tests/test_spawn_storm.py).

        Failed logins are throttled per name and address (``LoginThrottle``; NativeAuthenticator locks a name
        for everyone, so anyone could keep an admin locked out). The address is the client's own (``client_address``:
        never a header the client wrote). A name nobody has costs the same bcrypt check as one that exists, so that
        the answer's time does not tell them apart. Why a login was refused, where the person may be told, is left
        on the handler (``login_refusal``) for the login page."""
        username = self.normalize_username(data["username"])
        address = await self.client_address(handler) if handler is not None else "nowhere"
        throttled = self.allowed_failed_logins > 0
        if throttled:
            wait = self.throttle.wait(username, address)
            if wait > 0:
                _refused(handler, f"Too many failed logins: try again in {math.ceil(wait)} s.")
                self.log.warning("Login of %r from %s refused for %.0f s more after failed logins", username,
                                 address, wait)
                return None
        user = self.get_user(username)
        # An unknown name is checked against nobody's hash, at the same cost: the time does not tell.
        hashed = user.password if user else self._nobody
        password_ok = await asyncio.to_thread(bcrypt.checkpw, data["password"].encode(), hashed)
        validations = [user is not None, password_ok, user is not None and user.is_authorized]
        if user is not None and user.has_2fa:
            validations.append(user.is_valid_token(data.get("2fa")))
        if all(validations):
            if throttled:
                self.throttle.succeeded(username, address)
            return username
        if user is not None and password_ok and not user.is_authorized:
            # The right password, so the person may know (NativeAuthenticator's own message).
            _refused(handler, f"User {username} has not been authorized by an administrator yet.")
        elif throttled:
            self.throttle.failed(username, address)
            self.log.warning("Failed login of %r from %s", username, address)
        return None

    async def client_address(self, handler) -> str:
        """The address the request came from: the TCP peer's, or, where the peer is one of the ``trusted_proxies``,
        the last address of X-Forwarded-For (the one that proxy appended). Never X-Real-Ip or a client's own
        X-Forwarded-For entries, which the hub's server (Tornado, with xheaders) would otherwise take as the
        client's address."""
        request = handler.request
        context = getattr(request.connection, "context", None)
        peer = getattr(context, "address", None)
        peer = _plain(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if self.trusted_proxies and peer in await self._proxy_addresses():
            forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
            if forwarded[-1]:
                return _plain(forwarded[-1])
        return peer

    async def _proxy_addresses(self) -> frozenset:
        if time.monotonic() - self._proxies_at > PROXY_ADDRESSES_FOR:
            loop, found = asyncio.get_running_loop(), set()
            for name in self.trusted_proxies:
                try:
                    found |= {_plain(info[4][0]) for info in await loop.getaddrinfo(name, None,
                                                                                    type=socket.SOCK_STREAM)}
                except OSError as error:
                    self.log.warning("Could not look up the trusted proxy %s: %s", name, error)
            self._proxies, self._proxies_at = frozenset(found), time.monotonic()
        return self._proxies

    def get_handlers(self, app):
        return [(path, ThrottledLoginHandler if handler is handlers.LoginHandler else handler)
                for path, handler in super().get_handlers(app)]

    def create_user(self, username, password, **kwargs):
        name = self.normalize_username(username)
        if name in self.admin_users or name in self.reserved_names:
            self.log.warning("Refused a sign-up under the reserved name %r", username)
            return None
        return super().create_user(username, password, **kwargs)

    def ensure_admin_accounts(self) -> None:
        applied_file = Path(self.applied_file)
        applied = json.loads(applied_file.read_text()) if applied_file.exists() else {}
        for name in sorted(self.admin_users):
            password = (Path(self.password_files_dir) / f"admin-password-{name}").read_text().strip()
            # The fingerprint of a random 144-bit password tells nothing about it.
            fingerprint = hashlib.sha256(password.encode()).hexdigest()
            account = UserInfo.find(self.db, name)
            if account is not None and applied.get(name) == fingerprint:
                continue
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            if account is None:
                self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
                self.log.info("Created the admin account %s from its password file", name)
            else:
                account.password, account.is_authorized = hashed, True
                self.log.info("Set the admin account %s's password from its password file", name)
            self.db.commit()
            applied[name] = fingerprint
        partial = applied_file.with_suffix(".partial")
        partial.write_text(json.dumps(applied, indent=2, sort_keys=True))
        partial.replace(applied_file)


def _plain(address: str) -> str:
    """An address as one spelling: Node's IPv4-mapped IPv6 ("::ffff:10.0.0.5") as the IPv4 address it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped or parsed)


def _refused(handler, message: str) -> None:
    if handler is not None:
        handler.login_refusal = message


class ThrottledLoginHandler(handlers.LoginHandler):
    """NativeAuthenticator's login page, telling why a login was refused from what ``authenticate`` found: its own
    handler checks the password a second time to tell an unapproved account (in the event loop, and only for names
    that exist: a second clock that tells them apart)."""

    async def post(self):
        data = {argument: self.get_argument(argument, strip=False) for argument in self.request.arguments}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        message = getattr(self, "login_refusal", None) or "Invalid username or password."
        self.finish(await self._render(login_error=message, username=data.get("username")))
