"""Back up a host's hub onto the controller: one archive per host with everything users and the deploy made
(the hub database as SQLite's online backup, secrets, local CA and certificates, every user's home volume)
and a manifest of what, sizes, sha256 and versions. Its counterpart is ``roles.restore``."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyinfra import host
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files

from jupyterhub_gpu import remote as remote_command
from jupyterhub_gpu.target import Target
from jupyterhub_gpu_hub import PACKAGE_DIR

FILES = Path(__file__).parent / "files"


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tool:
    """Where the archive tool lives on a host."""

    directory: str

    @property
    def script(self) -> str:
        return f"{self.directory}/jupyterhub-gpu-archive"


def archive_directory(target: Target) -> str:
    return target.layout.backups


def ensure_tool(target: Target) -> Tool:
    """The archive tool on the host: a shell wrapper and the Python it runs in the hub's image."""
    tool = Tool(target.layout.bin)
    files.directory(name="Archive tool directory", path=tool.directory, mode="755")
    files.put(name="Archive tool", src=str(FILES / "jupyterhub-gpu-archive.sh"), dest=tool.script, mode="755")
    files.put(name="Archive tool (its Python)", src=str(PACKAGE_DIR / "archive.py"),
              dest=f"{tool.directory}/archive.py",
              mode="644")
    files.directory(name="Archive directory", path=archive_directory(target), mode="700")
    return tool


def backup_command(tool: Tool, target: Target, remote: str) -> StringCommand:
    return StringCommand(QuoteString(tool.script), "backup", QuoteString(str(target.install_dir)),
                         QuoteString(target.settings.compose_project), QuoteString(remote), QuoteString(host.name))


class _Progress(io.RawIOBase):
    """A file that says, on the controller's terminal, how much of it has arrived."""

    def __init__(self, stream, label: str, total: int):
        super().__init__()
        self.stream, self.label, self.total = stream, label, total
        self.done, self.digest, self.shown = 0, hashlib.sha256(), 0.0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        # pyinfra rewinds every file it is given; this one is only ever written from its start.
        if (offset, whence) != (0, 0) or self.done:
            raise io.UnsupportedOperation("a download in progress cannot seek")
        return 0

    def write(self, data: bytes) -> int:
        self.stream.write(data)
        self.digest.update(data)
        self.done += len(data)
        now = time.monotonic()
        if now - self.shown >= 1 or self.done == self.total:
            self.shown = now
            percent = 100 * self.done // self.total if self.total else 100
            sys.stderr.write(f"\r    {self.label}: {self.done / 2**20:,.1f} of {self.total / 2**20:,.1f} MiB "
                             f"({percent}%)")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        return len(data)


def download(state, host, remote: str, local: str) -> bool:
    """Copy the archive to the controller with a progress line, check it arrived whole, remove it on the host."""
    ok, output = remote_command.run(state, host, StringCommand("stat", "-c", "%s", QuoteString(remote), "&&",
                                                               "sha256sum", QuoteString(remote)))
    if not ok:
        raise BackupError(f"{host.name}: the archive {remote} was not made:\n{output.stderr}")
    size_line, sum_line = output.stdout_lines[-2:]
    size, remote_sha = int(size_line), sum_line.split()[0]
    path = Path(local)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)  # one an interrupted run left may be readable by others
    # Private from its first byte: it holds the hub's secrets and everyone's files.
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as stream:
        progress = _Progress(stream, f"{host.name}: {path.name}", size)
        if not remote_command.get(state, host, remote, progress):
            raise BackupError(f"{host.name}: could not copy {remote} to the controller")
    if progress.digest.hexdigest() != remote_sha:
        partial.unlink()
        raise BackupError(f"{host.name}: {path.name} differs from the host's copy after the transfer; try again")
    partial.replace(path)
    remote_command.run(state, host, StringCommand("rm", "-f", QuoteString(remote)))
    host.log(f"backup saved on the controller: {path} ({size / 2**20:,.1f} MiB, sha256 {remote_sha[:16]}…)")
    return True


@operation()
def archive_made(tool: Tool, target: Target, remote: str, local: str):
    """An archive of the host's hub made there and copied to ``local`` on the controller."""
    yield backup_command(tool, target, remote)
    yield FunctionCommand(download, (remote, local), {})


@deploy("Backup")
def ensure_backup(target: Target, destination: Path) -> Path:
    """Back the host up into ``destination``/<host>-<UTC time>.tar on the controller."""
    tool = ensure_tool(target)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{host.name}-{stamp}.tar"
    local = destination / name
    archive_made(name=f"Archive of the hub copied to {local}", tool=tool, target=target,
                 remote=f"{archive_directory(target)}/{name}", local=str(local))
    return local
