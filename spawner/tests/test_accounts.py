"""The hub's accounts module on its own: reserved names, the native authenticator's admin accounts from their
password files, and the statsd shim that nativeauthenticator 1.3.0 needs on JupyterHub 6."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from jupyterhub import orm

from jupyterhub_gpu_accounts.reserved import refusing


def test_reserved_names_are_turned_away_and_everyone_else_let_through():
    hook = refusing(["gpu-check"])
    authenticator = SimpleNamespace(log=logging.getLogger("test"))
    assert hook(authenticator, None, {"name": "gpu-check", "admin": None}) is None
    assert hook(authenticator, None, {"name": "ann"}) == {"name": "ann"}
    assert hook(authenticator, None, None) is None  # a failed login stays failed


def test_admins_come_from_their_password_files_and_reserved_names_cannot_sign_up(tmp_path):
    from nativeauthenticator import handlers

    from jupyterhub_gpu_accounts.native import DeployedNativeAuthenticator

    (tmp_path / "admin-password-root-admin").write_text("a-generated-password\n")
    db = orm.new_session_factory("sqlite://")()
    hub = DeployedNativeAuthenticator(admin_users={"root-admin"}, reserved_names={"gpu-check"},
                                      password_files_dir=str(tmp_path),
                                      applied_file=str(tmp_path / "applied.json"), _deprecated_db_session=db)
    assert hub.get_user("root-admin").is_authorized
    assert asyncio.run(hub.authenticate(None,
                                        {"username": "root-admin", "password": "a-generated-password"})) == "root-admin"
    assert "a-generated-password" not in (tmp_path / "applied.json").read_text()
    assert hub.create_user("gpu-check", "long-enough-password") is None
    # JupyterHub 6 has no statsd client; nativeauthenticator's login handler gets one that does nothing.
    timer = handlers.LoginHandler.statsd.timer("login.authenticate")
    assert timer.start() is timer and timer.stop() is None
