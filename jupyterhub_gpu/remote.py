"""Commands and file transfers that a role runs itself, inside a pyinfra function command, as an operation would;
and files that cross the connection staged only where nobody else can read them.

pyinfra hands an operation's commands the host's connector arguments (``_sudo``, ``_sudo_password``,
``_sudo_user``, ``_su_user``, ...) from the inventory, but a function command gets none: a bare
``host.run_shell_command`` runs as the SSH user. On a host reached as a user with sudo, that user may not
talk to the Docker engine or read root's files, so every such call goes through here.

Under sudo, pyinfra's own transfers stage each file in the host's shared temporary directory
(``/tmp/pyinfra-<sha1>``), readable there by every account while it crosses: a download is copied there and
made readable, an upload lands there first. Secrets and backup archives therefore cross through ``put`` and
``get`` here, staged in a fresh directory of the SSH user's own (mode 0700, made by ``mktemp -d``) and removed
with it afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

from pyinfra import host as current_host
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.util import get_file_sha1
from pyinfra.connectors.util import CommandOutput
from pyinfra.facts.files import File, Sha1File

# mktemp's template: a name that says whose it is, in the SSH user's temporary directory.
STAGING_TEMPLATE = "jupyterhub-gpu-transfer.XXXXXXXXXX"


class TransferError(RuntimeError):
    pass


def connector_arguments(state, host) -> dict:
    """The arguments an operation on ``host`` would run its commands with, as the inventory sets them."""
    arguments, _ = pop_global_arguments(state, host, {})
    return {key: arguments[key] for key in CONNECTOR_ARGUMENT_KEYS if key in arguments}


def run(state, host, command: StringCommand, **extra) -> tuple[bool, CommandOutput]:
    """Run ``command`` on ``host`` as its operations do (with sudo where the inventory says so)."""
    return host.run_shell_command(command, **{**connector_arguments(state, host), **extra})


def elevated(state, host) -> bool:
    """Whether the host's commands run as another user than the SSH user's (sudo, su, doas, dzdo)."""
    arguments = connector_arguments(state, host)
    return any(arguments.get(key) for key in ("_sudo", "_su_user", "_doas", "_dzdo"))


@contextmanager
def private_staging(host, within: str | None = None):
    """A fresh directory of the SSH user's own, mode 0700 (``mktemp -d``; in their temporary directory, or
    ``within`` a directory), removed with what is in it on the way out. Made and removed as the SSH user,
    without sudo: the user the file transfer itself runs as."""
    where = ["-p", QuoteString(within)] if within else ["-t"]
    ok, output = host.run_shell_command(StringCommand("mktemp", "-d", *where, STAGING_TEMPLATE))
    if not ok or not output.stdout.strip():
        raise TransferError(f"{host.name}: could not make a private directory for a transfer: {output.stderr}")
    directory = output.stdout.strip().splitlines()[-1]
    try:
        yield directory
    finally:
        host.run_shell_command(StringCommand("rm", "-rf", QuoteString(directory)))


def put(state, host, local, remote: str, mode: str = "600") -> bool:
    """Upload ``local`` (a path or a file object) to ``remote`` with ``mode``, as root where the inventory says
    sudo: the SSH user writes it into a private directory of their own, and ``install`` under sudo creates
    ``remote`` from it with ``mode`` from its first byte. Logged in as root, the private directory is beside
    ``remote`` and the file is renamed into place (an archive of many GB is not copied)."""
    as_root = not elevated(state, host)
    with private_staging(host, within=(remote.rsplit("/", 1)[0] or "/") if as_root else None) as directory:
        staged = f"{directory}/upload"
        if not host.put_file(local, staged):
            return False
        if as_root:
            ok, output = host.run_shell_command(StringCommand("chmod", mode, QuoteString(staged), "&&", "mv", "-f",
                                                              QuoteString(staged), QuoteString(remote)))
        else:
            ok, output = run(state, host, StringCommand("install", "-m", mode, QuoteString(staged),
                                                        QuoteString(remote)))
        if not ok:
            raise TransferError(f"{host.name}: could not write {remote}: {output.stderr}")
    return True


def get(state, host, remote: str, local) -> bool:
    """Download ``remote`` (root's, where the inventory says sudo) to ``local``, a path or a writable file: copied
    (under sudo where the inventory says so) into a private directory of the SSH user's, and read from there."""
    if not elevated(state, host):
        return host.get_file(remote, local)
    with private_staging(host) as directory:
        staged = f"{directory}/download"
        # Readable by the SSH user, whom sudo left its owner: nobody else can enter the directory.
        ok, output = run(state, host, StringCommand("cp", QuoteString(remote), QuoteString(staged), "&&",
                                                    "chmod", "644", QuoteString(staged)))
        if not ok:
            raise TransferError(f"{host.name}: could not read {remote}: {output.stderr}")
        return host.get_file(staged, local)


@operation(is_idempotent=True)
def private_file(src, dest: str, mode: str = "600"):
    """A file from the controller (a path, or a file object) at ``dest`` on the host with ``mode``, staged on its
    way only in a private directory of the SSH user's (``put``): for secrets, which pyinfra's ``files.put`` would
    stage under sudo where every account can read them."""
    wanted = int(mode)
    found = current_host.get_fact(File, path=dest)
    if found and current_host.get_fact(Sha1File, path=dest) == get_file_sha1(src):
        if found["mode"] == wanted:
            current_host.noop(f"file {dest} is as on the controller, mode {mode}")
            return
        yield StringCommand("chmod", mode, QuoteString(dest))
        return
    yield FunctionCommand(_uploaded, (src, dest, mode), {})


def _uploaded(state, host, src, dest: str, mode: str) -> bool:
    if hasattr(src, "seek"):
        src.seek(0)  # read once for its checksum
    if not put(state, host, src, dest, mode):
        raise TransferError(f"{host.name}: could not copy a file to {dest}")
    return True
