"""Ensure the hub's secrets: generated once on the host or uploaded from the controller, mode 0600,
kept across re-deploys, never printed."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File
from pyinfra.operations import files

from jupyterhub_gpu.remote import private_file
from jupyterhub_gpu.target import Target

# Random hex tokens the hub needs whatever authenticates people: name -> what it protects.
TOKENS = {
    "cookie_secret": "signs the hub's login cookies",
    "proxy_token": "authenticates the hub to configurable-http-proxy",
}
# Generated passwords: 18 random bytes, 24 URL-safe characters (long enough for any password policy).
PASSWORD_COMMAND = "head -c 18 /dev/urandom | base64 | tr '+/' '-_'"
TOKEN_COMMAND = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'"


@dataclass
class HubSecrets:
    """Secret files on the host by the name the hub reads them under (/run/secrets/<name>)."""

    paths: dict[str, str] = field(default_factory=dict)
    admin_passwords: dict[str, str] = field(default_factory=dict)
    operations: list[OperationMeta] = field(default_factory=list)

    def changed(self) -> bool:
        return any(op.did_change() for op in self.operations)


@operation(is_idempotent=True)
def secret_file(path: str, command: str = TOKEN_COMMAND):
    """A secret at ``path``, mode 0600, made on the host by ``command``: created once, never overwritten
    or printed, so that it never crosses the connection."""
    info = host.get_fact(File, path=path)
    if info and info.get("size", 0) > 0:
        if info["mode"] == 600:
            host.noop(f"secret {path} exists with mode 0600")
            return
        yield StringCommand("chmod", "600", QuoteString(path))
        return
    yield StringCommand("umask 077 &&", command, ">", QuoteString(f"{path}.new"), "&&", "mv",
                        QuoteString(f"{path}.new"),
                        QuoteString(path))


@deploy("Secrets")
def ensure_secrets(target: Target) -> HubSecrets:
    settings = target.settings
    secrets_dir = target.layout.secrets
    files.directory(name="Secrets directory", path=secrets_dir, mode="700")
    result = HubSecrets()

    def generated(name: str, purpose: str, command: str = TOKEN_COMMAND) -> str:
        path = result.paths[name] = f"{secrets_dir}/{name}"
        result.operations.append(secret_file(name=f"Secret {name} ({purpose})", path=path, command=command))
        return path

    def uploaded(name: str, purpose: str, content: io.IOBase | str) -> None:
        path = result.paths[name] = f"{secrets_dir}/{name}"
        result.operations.append(private_file(name=f"Secret {name} ({purpose})", src=content, dest=path, mode="600"))

    for name, purpose in TOKENS.items():
        generated(name, purpose)
    if settings.ops_token:
        generated("ops_api_token", "the read-only API token of the ops service, for monitoring scripts")
    if target.gpu_pool:
        generated("gpu_check_api_token", "the token of bin/gpu-check, which may start and stop the servers of the "
                  "user gpu-check only")
    if settings.metrics_token:
        generated("metrics_api_token", "the token of a Prometheus scraper, which may read /hub/metrics only")

    if settings.authenticator == "native":
        for admin in settings.admin_users:
            result.admin_passwords[admin] = generated(
                f"admin-password-{admin}", f"{admin}'s password; delete it and deploy again to rotate it",
                PASSWORD_COMMAND)
    elif settings.authenticator in ("shared-password", "dummy"):
        generated("shared_password", "the test-only shared password", PASSWORD_COMMAND)
        generated("shared_admin_password", "the test-only shared admin password",
                  f"{{ {PASSWORD_COMMAND}; {PASSWORD_COMMAND}; }} | tr -d '\\n'")
    elif settings.authenticator == "ldap":
        if settings.ldap_search_password_file:
            uploaded("ldap_search_password", "the LDAP search user's password", str(settings.ldap_search_password_file))
        if settings.ldap_ca_file:
            uploaded("ldap_ca", "the CA of the LDAP server", str(settings.ldap_ca_file))
    elif settings.authenticator == "oauth":
        if settings.oauth_client_secret_file:
            uploaded("oauth_client_secret", "the OAuth client secret", str(settings.oauth_client_secret_file))
        else:
            uploaded("oauth_client_secret", "the OAuth client secret",
                     io.StringIO(os.environ[settings.oauth_client_secret_env]))
    return result
