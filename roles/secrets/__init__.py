"""Ensure the hub's secrets: generated once on the host, mode 0600, kept across re-deploys, never printed."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.files import File
from pyinfra.operations import files

from roles.preflight import Target

# name -> what it protects
SECRETS = {
    "cookie_secret": "signs the hub's login cookies",
    "proxy_token": "authenticates the hub to configurable-http-proxy",
    "ops_api_token": "the API token of the hub service that deploy checks and admins' scripts use",
}


@operation(is_idempotent=True)
def secret_file(path: str, nbytes: int = 32):
    """A random hex secret at ``path`` with mode 0600: created once, never overwritten or printed."""
    info = host.get_fact(File, path=path)
    if info and info.get("size", 0) > 0:
        if info["mode"] == 600:
            host.noop(f"secret {path} exists with mode 0600")
            return
        yield StringCommand("chmod", "600", path)
        return
    # Generated in place on the host so the secret never crosses the connection.
    yield StringCommand(
        f"umask 077 && head -c {nbytes} /dev/urandom | od -An -tx1 | tr -d ' \\n' > {path}.new && mv {path}.new {path}"
    )


@deploy("Secrets")
def ensure_secrets(target: Target) -> dict[str, str]:
    secrets_dir = f"{target.install_dir}/secrets"
    files.directory(name="Secrets directory", path=secrets_dir, mode="700")
    paths = {}
    for name, purpose in SECRETS.items():
        paths[name] = f"{secrets_dir}/{name}"
        secret_file(name=f"Secret {name} ({purpose})", path=paths[name])
    return paths
