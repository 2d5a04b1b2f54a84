"""Back up and restore a jupyterhub-gpu host: run by jupyterhub-gpu-archive.sh inside the hub's own image,
with the hub's volume and the host's deploy files mounted under /backup (to back up), or one user volume alone
(to pack it), or all of them (to restore).

    archive.py pack DIRECTORY DESTINATION                 DIRECTORY as a gzip tar at DESTINATION
    archive.py backup ARCHIVE SOURCE HUB_IMAGE PROJECT WORK   one archive of everything users and the deploy
                                                          made, with the homes WORK/volumes/*.tar.gz holds
    archive.py volumes ARCHIVE                            the user volumes an archive holds, one per line
    archive.py unpack ARCHIVE WORK                        check every sha256 while extracting into WORK
    archive.py apply ARCHIVE WORK                         put it all back (the hub and its servers stopped)

An archive is a tar of: manifest.json (what, sizes, sha256, versions), hub/jupyterhub.sqlite and
hub/gpu-usage.sqlite (SQLite's online backups, consistent while the hub writes), hub/data.tar.gz (the rest of
the hub's volume), host/install.tar.gz (secrets, local CA, certificates, ACME account), host/letsencrypt.tar.gz (where
certbot keeps them) and volumes/<volume>.tar.gz (each user's home).
"""

import datetime
import errno
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import sys
import tarfile
from importlib import metadata
from pathlib import Path

ROOT = Path("/backup")
HUB_DATA = ROOT / "hub-data"
INSTALL = ROOT / "install"
LETSENCRYPT = ROOT / "letsencrypt"
VOLUMES = ROOT / "volumes"
DATABASE = "jupyterhub.sqlite"
# The hub's SQLite databases: the hub's own and the GPU usage record (who held which GPUs when).
DATABASES = (DATABASE, "gpu-usage.sqlite")
# What of the deploy's own directory is state (the rest it writes again at every deploy).
INSTALL_STATE = ("secrets", "ca", "tls", "acme")
FORMAT = 1
CHUNK = 1 << 20


def say(message: str) -> None:
    print(message, flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Exactly(io.RawIOBase):
    """A file's content as exactly ``size`` bytes: what it has, then zeros where it shrank while being read (a
    running server writes its home while it is packed; tar's header already gave the size)."""

    def __init__(self, stream, size: int):
        super().__init__()
        self.stream, self.left = stream, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(n)[:n]
        data += bytes(n - len(data))
        self.left -= n
        return data


def _add_tree(archive: tarfile.TarFile, path: Path, arcname: str, keep) -> None:
    """``path`` and what is below it, as ``TarFile.add`` adds them, for a tree that changes while it is read: what
    vanishes between its listing and its reading is left out; a file that became a link, a FIFO or a device is
    never opened as one (no link followed, no read that waits forever); one that shrank is padded with zeros."""
    try:
        info = archive.gettarinfo(str(path), arcname)  # lstat: a link is kept as a link
    except FileNotFoundError:
        return
    info = keep(info) if info is not None else None  # None: a socket, which tar does not hold
    if info is None:
        return
    if not info.isreg():
        archive.addfile(info)
    else:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
                return  # gone, or no longer a regular file
            raise
        with os.fdopen(descriptor, "rb") as stream:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return
            archive.addfile(info, _Exactly(stream, info.size))
    if info.isdir():
        try:
            names = sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            _add_tree(archive, path / name, f"{arcname}/{name}", keep)


def _tar_directory(directory: Path, destination: Path, members=None, skip=()) -> int:
    """``directory`` (itself, so that its owner and mode come back too), or only its ``members``, as a gzip
    tar with owners and modes kept, leaving out the top-level names in ``skip``; the bytes of file content."""
    total = 0
    skipped = {f"./{name}" for name in skip}

    def counted(info: tarfile.TarInfo):
        nonlocal total
        if info.name in skipped:
            return None
        if info.isfile():
            total += info.size
        return info

    with tarfile.open(destination, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as archive:
        if members is None:
            _add_tree(archive, directory, ".", counted)
        for name in members or ():
            _add_tree(archive, directory / name, f"./{name}", counted)
    return total


def pack(directory: str, destination: str) -> None:
    """One home as a gzip tar, packed where nothing but that home (and an empty directory to write into) is
    mounted."""
    try:
        _tar_directory(Path(directory), Path(destination))
    except BaseException:
        Path(destination).unlink(missing_ok=True)
        raise


def content_bytes(packed: Path) -> int:
    """The bytes of file content in a gzip tar."""
    with tarfile.open(packed) as archive:
        return sum(member.size for member in archive if member.isfile())


def backup(archive_path: str, source: str, hub_image: str, project: str, work: str) -> None:
    """The archive, from the hub's volume and the deploy's state directories here and the homes that ``pack``
    put into ``work``/volumes (which the caller removes)."""
    work = Path(work)
    try:
        files, contents = {}, {}
        (work / "hub").mkdir()
        for name in DATABASES:
            database = HUB_DATA / name
            if not database.exists():
                continue
            # SQLite's online backup: a consistent copy even while the hub writes.
            with sqlite3.connect(database) as live, sqlite3.connect(work / "hub" / name) as copy:
                try:
                    live.backup(copy)
                except sqlite3.OperationalError as error:
                    if "disk is full" not in str(error):
                        raise
                    # SQLite says ENOSPC in its own words: said as the other writes say it.
                    raise OSError(errno.ENOSPC, str(error), str(work / "hub" / name)) from error
            say(f"hub database {name}: {(work / 'hub' / name).stat().st_size} bytes")
        skip = {name + suffix for name in DATABASES for suffix in ("", "-journal", "-wal", "-shm")}
        contents["hub/data.tar.gz"] = _tar_directory(HUB_DATA, work / "hub" / "data.tar.gz", skip=skip)
        (work / "host").mkdir()
        contents["host/install.tar.gz"] = _tar_directory(INSTALL, work / "host" / "install.tar.gz", INSTALL_STATE)
        if LETSENCRYPT.is_dir() and any(LETSENCRYPT.iterdir()):
            contents["host/letsencrypt.tar.gz"] = _tar_directory(LETSENCRYPT, work / "host" / "letsencrypt.tar.gz")
        volumes = sorted(path.name[:-len(".tar.gz")] for path in (work / "volumes").glob("*.tar.gz"))
        for index, volume in enumerate(volumes, 1):
            member = f"volumes/{volume}.tar.gz"
            contents[member] = content_bytes(work / member)
            say(f"home volume {index}/{len(volumes)} {volume}: {contents[member]} bytes")
        for path in sorted(work.rglob("*")):
            if path.is_file():
                name = str(path.relative_to(work))
                files[name] = {"size": path.stat().st_size, "sha256": sha256(path)}
                if name in contents:
                    files[name]["content_bytes"] = contents[name]
        manifest = {
            "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "source": source,
            "compose_project": project,
            "hub_image": hub_image,
            "versions": {name: _version(name) for name in ("jupyterhub", "gpudockerspawner", "dockerspawner")},
            "volumes": volumes,
            "files": files,
        }
        partial = Path(archive_path + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.datetime.now().timestamp())
            archive.addfile(info, io.BytesIO(data))
            for name in files:
                archive.add(work / name, arcname=name)
        os.chmod(partial, 0o600)
        partial.replace(archive_path)
        say(f"archive {archive_path}: {Path(archive_path).stat().st_size} bytes, {len(volumes)} home volumes")
    finally:
        Path(archive_path + ".partial").unlink(missing_ok=True)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def read_manifest(archive_path: str) -> dict:
    with tarfile.open(archive_path) as archive:
        return json.load(archive.extractfile("manifest.json"))


def verify(archive_path: str, into: Path) -> dict:
    """Extract every member into ``into`` and check it against the manifest; raise on any difference."""
    manifest = read_manifest(archive_path)
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"{archive_path}: archive format {manifest.get('format')!r}, this tool reads {FORMAT}")
    outer_seen: set = set()
    with tarfile.open(archive_path) as archive:
        for member in archive.getmembers():
            if member.name == "manifest.json":
                continue
            if member.name not in manifest["files"] or not member.isfile():
                raise SystemExit(f"{archive_path}: {member.name} is not in its manifest")
            why = refusal(member, set(), outer_seen)
            if why:
                raise SystemExit(f"{archive_path}: {member.name} is {why}; nothing was restored")
            archive.extract(member, into, **_safe())
    for name, expected in manifest["files"].items():
        path = into / name
        if not path.is_file() or sha256(path) != expected["sha256"]:
            raise SystemExit(f"{archive_path}: {name} does not match its sha256 in the manifest; nothing was restored")
    # Every inner archive's members, before anything on the host changes.
    for name in manifest["files"]:
        if name.endswith(".tar.gz"):
            with tarfile.open(into / name) as inner:
                checked(inner, f"{archive_path}: {name}")
    return manifest


def _safe() -> dict:
    # Python's extraction filter where it has one: no absolute paths or links out of the directory, owners kept.
    return {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}


def refusal(member: tarfile.TarInfo, links: set, seen: set) -> str | None:
    """Why ``member`` of an inner archive may not be extracted as root on the host, or None. ``links`` holds the
    names of the links seen before it, ``seen`` every name. The hub image's Python (3.11.2) has no extraction
    filter, so these are the 'tar' filter's rules, and the same everywhere: no absolute path and no '..'; no
    device or FIFO; a hard link only to a member of the tree, never through a link; nothing written through a
    link; no name twice (a file after a link of the same name would be written through it). A symbolic link
    itself may point anywhere (a user's virtualenv points at /usr/bin/python3): it is followed only inside that
    user's container, never by the restore."""
    parts = [part for part in member.name.split("/") if part not in ("", ".")]
    if member.name.startswith("/") or ".." in parts:
        return "an absolute path or '..'"
    if member.ischr() or member.isblk() or member.isfifo():
        return "a device file or FIFO"
    name = "/".join(parts)
    if name in seen:
        return "in the archive twice"
    if member.islnk():
        target = [part for part in member.linkname.split("/") if part not in ("", ".")]
        if member.linkname.startswith("/") or ".." in target:
            return f"a hard link to {member.linkname}, outside the archive"
        for depth in range(1, len(target) + 1):
            if "/".join(target[:depth]) in links:
                return f"a hard link through the link {'/'.join(target[:depth])}"
    for depth in range(1, len(parts)):
        if "/".join(parts[:depth]) in links:
            return f"a path through the link {'/'.join(parts[:depth])}"
    seen.add(name)
    if member.issym() or member.islnk():
        links.add(name)
    return None


def checked(archive: tarfile.TarFile, name: str) -> list:
    """The members of ``archive`` (``name`` in messages), each safe to extract as root, with setuid, setgid and
    sticky bits and group and other write bits cleared as the 'tar' filter clears them; refuses the archive at
    the first member that is not."""
    links: set = set()
    seen: set = set()
    members = []
    for member in archive.getmembers():
        why = refusal(member, links, seen)
        if why:
            raise SystemExit(f"{name}: {member.name} is {why}; nothing was restored")
        member.mode &= ~0o7022
        members.append(member)
    return members


def _top(name: str) -> str:
    """The first part of a member's name ("" for the archive's top directory itself)."""
    return next((part for part in name.split("/") if part not in ("", ".")), "")


def _replace_contents(directory: Path, packed: Path, members=None) -> None:
    """Make ``directory`` hold exactly what ``packed`` holds (only ``members`` of it, where given)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(packed) as archive:
        safe = checked(archive, packed.name)  # before anything is removed
        if members is not None:
            # Only what is replaced: anything else in the archive (the deploy's own scripts, say) is not restored.
            wanted = set(members)
            safe = [member for member in safe if _top(member.name) in wanted]
        for name in members if members is not None else os.listdir(directory):
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        archive.extractall(directory, members=safe, numeric_owner=True, **_safe())


def volumes(archive_path: str) -> None:
    for volume in read_manifest(archive_path)["volumes"]:
        print(volume)


def unpack(archive_path: str, work: str) -> None:
    """Check and extract the archive into ``work`` (beside it), changing nothing else: a damaged archive, or a
    disk too full to hold it, stops the restore before the hub is stopped."""
    into = Path(work)
    into.mkdir(mode=0o700)
    try:
        manifest = verify(archive_path, into)
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise
    say(f"{archive_path}: every checksum matches ({len(manifest['files'])} files from {manifest['source']}, "
        f"{manifest['created']})")


def apply(archive_path: str, work: str) -> None:
    """Put what ``unpack`` extracted in place; the hub and its servers are stopped."""
    work = Path(work)
    manifest = read_manifest(archive_path)
    try:
        _replace_contents(HUB_DATA, work / "hub" / "data.tar.gz")
        for name in DATABASES:
            if (work / "hub" / name).exists():
                shutil.copy2(work / "hub" / name, HUB_DATA / name)
                # The hub's user, whatever service_uid made it: the volume's own owner.
                owner = HUB_DATA.stat()
                os.chown(HUB_DATA / name, owner.st_uid, owner.st_gid)
        _replace_contents(INSTALL, work / "host" / "install.tar.gz", INSTALL_STATE)
        if (work / "host" / "letsencrypt.tar.gz").exists():
            _replace_contents(LETSENCRYPT, work / "host" / "letsencrypt.tar.gz")
        for volume in manifest["volumes"]:
            _replace_contents(VOLUMES / volume, work / "volumes" / f"{volume}.tar.gz")
            say(f"home volume {volume} restored")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    command, *arguments = sys.argv[1:]
    try:
        {"pack": pack, "backup": backup, "volumes": volumes, "unpack": unpack, "apply": apply}[command](*arguments)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        # The partial files are gone again (see the finally clauses); the hub was never stopped for a backup.
        print(f"no space left on this host's disk for the {'backup' if command == 'pack' else command} "
              f"({error.filename or 'archive'}): free some space in the deploy's backups directory on this host "
              "and run it again; nothing else was changed", file=sys.stderr)
        return 28
    return 0


if __name__ == "__main__":
    sys.exit(main())
