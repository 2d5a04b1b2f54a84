"""NativeAuthenticator as a jupyterhub-gpu hub runs it: admin accounts made by the deploy, bcrypt off the event
loop, failed logins counted per name and address, reserved names that nobody signs up under; and the shim that
lets nativeauthenticator 1.3.0 log people in on JupyterHub 6."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import bcrypt
from nativeauthenticator import NativeAuthenticator, handlers
from nativeauthenticator.orm import UserInfo
from traitlets import Set, Unicode


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        login_without_statsd()
        self.ensure_admin_accounts()

    async def authenticate(self, handler, data):
        """NativeAuthenticator 1.3's checks, in its order, with bcrypt's deliberate quarter second of CPU
        in a thread: in the hub's event loop, fifty people logging in at once held every request of the
        hub for up to 10 s (tests/test_spawn_storm.py).

        Failed logins lock a name for the address they came from only (NativeAuthenticator counts by name
        alone, so anyone could keep an admin locked out from everywhere). The address is the client's as
        the proxy forwards it (X-Forwarded-For, which the hub reads; a client's own header is not the last).
        """
        username = self.normalize_username(data["username"])
        attempts = f"{username} from {handler.request.remote_ip if handler is not None else 'nowhere'}"
        user = self.get_user(username)
        if not user or (self.allowed_failed_logins and self.is_blocked(attempts)):
            return None
        password_ok = await asyncio.to_thread(bcrypt.checkpw, data["password"].encode(), user.password)
        validations = [user.is_authorized, password_ok]
        if user.has_2fa:
            validations.append(user.is_valid_token(data.get("2fa")))
        if all(validations):
            self.successful_login(attempts)
            return username
        self.add_login_attempt(attempts)
        return None

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
