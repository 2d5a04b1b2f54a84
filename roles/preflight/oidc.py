"""Read an OpenID provider's endpoints from its discovery document, on the controller, before any change."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path


class DiscoveryError(ValueError):
    pass


def endpoints(issuer: str, extra_ca_files: list[Path] = ()) -> dict[str, str]:
    """{"authorize_url", "token_url", "userdata_url"} from ``<issuer>/.well-known/openid-configuration``,
    trusting the controller's CAs and ``extra_ca_files`` (a private provider's CA)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    context = ssl.create_default_context()
    for ca_file in extra_ca_files:
        context.load_verify_locations(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, context=context, timeout=15) as response:
            document = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DiscoveryError(f"cannot read {url} from the controller ({error}); set oauth_authorize_url, "
                             "oauth_token_url and oauth_userdata_url instead") from None
    wanted = {"authorize_url": "authorization_endpoint", "token_url": "token_endpoint",
              "userdata_url": "userinfo_endpoint"}
    missing = [key for key in wanted.values() if not isinstance(document.get(key), str)]
    if missing:
        raise DiscoveryError(f"{url} names no {', '.join(missing)}")
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise DiscoveryError(f"{url} says its issuer is {document.get('issuer')!r}, not {issuer!r}")
    return {ours: document[theirs] for ours, theirs in wanted.items()}
