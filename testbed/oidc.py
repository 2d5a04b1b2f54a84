"""A real OpenID Connect provider for the OAuth logins: npm's oidc-provider (a certified implementation)
under Node, run by the test bed over HTTPS with a certificate from a throwaway CA (oidc/provider.mjs).

It listens where both the targets' hubs and the test bed's browser reach it (the bridge gateway). The
deploy is given its CA through ``build_extra_ca_certs``, as a site with a private identity provider would.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import requests

from testbed import STATE
from testbed.acme import throwaway_ca
from testbed.targets import wait_for_port

SOURCE = Path(__file__).parent / "oidc"
PORT = 9443
CLIENT_ID = "jupyterhub-gpu"


def ensure_installed() -> None:
    """oidc-provider at the version package-lock.json pins, installed once (npm ci)."""
    marker = SOURCE / "node_modules" / ".package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < (SOURCE / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=SOURCE, check=True)


class Provider:
    def __init__(self, address: str, redirect_uri: str, accounts: dict[str, dict]):
        """``accounts``: username -> {"password": ..., "groups": [...]}."""
        ensure_installed()
        self.root = STATE / "oidc"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca_file, cert, key = throwaway_ca(self.root / "tls", "oidc", ips=[address])
        self.issuer = f"https://{address}:{PORT}"
        self.client_secret = secrets.token_urlsafe(24)
        config = self.root / "config.json"
        config.write_text(json.dumps({
            "issuer": self.issuer, "host": address, "port": PORT, "cert": str(cert), "key": str(key),
            "client": {"id": CLIENT_ID, "secret": self.client_secret, "redirect_uri": redirect_uri},
            "accounts": accounts,
        }))
        config.chmod(0o600)
        self.secret_file = self.root / "client-secret"
        self.secret_file.write_text(self.client_secret)
        self.secret_file.chmod(0o600)
        self.log = (self.root / "provider.log").open("wb")
        self.process = subprocess.Popen(["node", str(SOURCE / "provider.mjs"), str(config)],
                                        stdout=self.log, stderr=self.log, start_new_session=True)
        wait_for_port(address, PORT, process=self.process)
        requests.get(f"{self.issuer}/.well-known/openid-configuration", verify=str(self.ca_file),
                     timeout=10).raise_for_status()

    def inventory_data(self) -> dict:
        return {
            "authenticator": "oauth",
            "oauth_provider": "generic",
            "oauth_client_id": CLIENT_ID,
            "oauth_client_secret_file": str(self.secret_file),
            "oauth_issuer_url": self.issuer,
            "oauth_scopes": ["openid", "profile", "groups"],
            "build_extra_ca_certs": [str(self.ca_file)],
        }

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()
