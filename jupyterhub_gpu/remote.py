"""Commands and file transfers that a role runs itself, inside a pyinfra function command, as an operation would.

pyinfra hands an operation's commands the host's connector arguments (``_sudo``, ``_sudo_password``,
``_sudo_user``, ``_su_user``, ...) from the inventory, but a function command gets none: a bare
``host.run_shell_command`` runs as the SSH user. On a host reached as a user with sudo, that user may not
talk to the Docker engine or read root's files, so every such call goes through here.
"""

from __future__ import annotations

from pyinfra.api import StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.connectors.util import CommandOutput


def connector_arguments(state, host) -> dict:
    """The arguments an operation on ``host`` would run its commands with, as the inventory sets them."""
    arguments, _ = pop_global_arguments(state, host, {})
    return {key: arguments[key] for key in CONNECTOR_ARGUMENT_KEYS if key in arguments}


def run(state, host, command: StringCommand, **extra) -> tuple[bool, CommandOutput]:
    """Run ``command`` on ``host`` as its operations do (with sudo where the inventory says so)."""
    return host.run_shell_command(command, **{**connector_arguments(state, host), **extra})


def put(state, host, local: str, remote: str) -> bool:
    """Upload ``local`` to ``remote`` as the host's operations write files (with sudo, through a temporary file
    of the SSH user's, where the inventory says so)."""
    return host.put_file(local, remote, **connector_arguments(state, host))


def get(state, host, remote: str, local) -> bool:
    """Download ``remote`` (root's, where the inventory says sudo) to ``local``, a path or a writable file."""
    return host.get_file(remote, local, **connector_arguments(state, host))
