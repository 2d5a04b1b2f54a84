"""Restore a backup archive (``roles.backup``) onto a host, fresh or not: checked on the controller before
anything changes, applied once, after the images are there and before the secrets, certificates and hub
services, which then find what the archive held and keep it."""

from __future__ import annotations

import datetime
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version
from pyinfra import host
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import File

from jupyterhub_gpu import remote as remote_command
from jupyterhub_gpu.target import Target
from roles import backup
from roles.images import Images
from roles.images.recipes import jupyterhub_pin

CHUNK = 1 << 20


class RestoreError(PyinfraError, ValueError):
    """An archive that cannot be restored; raised before any change. A pyinfra error, so that pyinfra's command
    line prints the message alone."""


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    manifest: dict


def _sha256(stream) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def check_archive(path: Path, target: Target) -> Archive:
    """The archive, if it is whole and this host can take it; otherwise RestoreError saying why."""
    refuse = f"cannot restore {path} onto {host.name} (nothing was changed)"
    if not path.is_file():
        raise RestoreError(f"{refuse}: no such file")
    try:
        with tarfile.open(path) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))
            seen = set()
            for member in archive.getmembers():
                if member.name == "manifest.json":
                    continue
                expected = manifest["files"].get(member.name)
                if expected is None or not member.isfile():
                    raise RestoreError(f"{refuse}: {member.name} is not in the archive's manifest")
                if _sha256(archive.extractfile(member)) != expected["sha256"]:
                    raise RestoreError(f"{refuse}: {member.name} does not match its sha256 in the manifest "
                                       "(the archive is damaged)")
                seen.add(member.name)
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError) as error:
        raise RestoreError(f"{refuse}: not a jupyterhub-gpu backup archive ({error})") from None
    missing = sorted(set(manifest["files"]) - seen)
    if missing:
        raise RestoreError(f"{refuse}: the archive lacks {', '.join(missing)}")
    archived = manifest["versions"].get("jupyterhub")
    ours = jupyterhub_pin(target.settings).split("==", 1)[1]
    if archived and Version(archived) > Version(ours):
        raise RestoreError(f"{refuse}: its hub database comes from JupyterHub {archived}, newer than the "
                           f"{ours} this deploy installs; deploy with the newer pins, then restore")
    project = target.settings.compose_project
    if manifest["compose_project"] != project:
        raise RestoreError(f"{refuse}: it holds compose_project {manifest['compose_project']!r}, the host's "
                           f"is {project!r}; set compose_project to match")
    with open(path, "rb") as stream:
        return Archive(path, _sha256(stream), manifest)


def _upload(state, host, local: str, remote: str) -> bool:
    if not remote_command.put(state, host, local, remote):
        raise backup.BackupError(f"could not copy {local} to {host.name}")
    return True


@operation()
def archive_restored(tool: backup.Tool, target: Target, archive: Archive, hub_image: str):
    """The archive's content on the host, once: a marker named by the archive's sha256 says it was restored,
    so that running the restore again never overwrites what users made since. What the host held before is
    first archived on the host itself."""
    marker = f"{target.layout.restored}/{archive.sha256}"
    if host.get_fact(File, path=marker):
        host.noop(f"{archive.path.name} (sha256 {archive.sha256[:16]}…) was restored here already; its marker "
                  f"{marker} keeps it from overwriting newer work")
        return
    backups = backup.archive_directory(target)
    remote = f"{backups}/{archive.path.name}"
    yield FunctionCommand(_upload, (str(archive.path), remote), {})
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    before = f"{backups}/pre-restore-{stamp}.tar"
    # A host that already runs a hub keeps what it had, on the host, before the archive replaces it.
    yield StringCommand("if", "docker", "inspect", "jupyterhub", ">/dev/null", "2>&1;", "then",
                        backup.backup_command(tool, target, before), ";", "fi")
    yield StringCommand(QuoteString(tool.script), "restore", QuoteString(str(target.install_dir)),
                        QuoteString(target.settings.compose_project), QuoteString(remote), QuoteString(hub_image))
    yield StringCommand("mkdir", "-p", QuoteString(target.layout.restored), "&&", "date", "-u", "+%FT%TZ",
                        ">", QuoteString(marker), "&&", "rm", "-f", QuoteString(remote))


def ensure_restored(target: Target, images: Images, archive: Archive) -> None:
    tool = backup.ensure_tool(target)
    archive_restored(name=f"Restored {archive.path.name} (from {archive.manifest['source']}, "
                          f"{archive.manifest['created']})",
                     tool=tool, target=target, archive=archive, hub_image=images.hub)
