"""Names nobody logs in under, whatever the identity provider says: the service accounts'."""

from __future__ import annotations

from collections.abc import Iterable


def refusing(reserved: Iterable[str]):
    """A post-authentication hook (``Authenticator.post_auth_hook``) that turns away the ``reserved`` names
    (JupyterHub refuses a login the hook returns None for), and those names only. Not ``blocked_users``:
    JupyterHub takes a blocked user's roles and stops its servers, the service's own."""
    names = frozenset(reserved)

    def hook(authenticator, handler, authentication):
        if authentication and authentication.get("name") in names:
            authenticator.log.warning("Refused a login under the reserved name %r", authentication["name"])
            return None
        return authentication

    return hook
