"""Folders a hub group shares: a course's datasets that students read and staff write, a research group's data.

Each folder is a Docker volume of its own (``<prefix><name>``), or a host path an admin names, mounted into a
person's server at its start where one of their hub groups may read it (read-only) or write it (read-write; writing
wins where someone is in both). Group membership is the hub's at that moment (the admin page, an OIDC groups
claim): a person who joins a group gets the folder at their next start. Nobody outside the groups gets the mount.

    c.GPUDockerSpawner.shared_folders = {
        "course-101": {"mount": "/home/jovyan/shared/course-101", "read": ["students"], "write": ["staff"]},
        "datasets": {"mount": "/home/jovyan/datasets", "read": ["research"], "path": "/srv/datasets"},
    }

Every check of a folder is ``parse_shared_folders``, for the hub's trait and the deploy's settings alike.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

HOME = "/home/jovyan"
# A Docker volume name's characters (the folder's volume is named after it).
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
KEYS = {
    "mount": "where it appears in a server: a folder inside /home/jovyan (not the home itself)",
    "read": "hub groups whose members may read it",
    "write": "hub groups whose members may read and write it",
    "path": "a host path to mount instead of a volume of its own (on a cluster: one every GPU node mounts, as NFS)",
}


@dataclass(frozen=True)
class SharedFolder:
    name: str
    mount: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    path: str = ""

    def source(self, volume_prefix: str) -> str:
        """What Docker mounts: the host path, or the folder's own volume."""
        return self.path or f"{volume_prefix}{self.name}"


def _groups(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(group, str) and group for group in value):
        raise ValueError(f"{where} = {value!r}: a list of hub group names")
    return tuple(value)


def parse_shared_folders(value, where: str = "shared_folders") -> list[SharedFolder]:
    """The folders of a ``shared_folders`` setting; a ValueError names the key, the value and what is allowed. A group
    named that does not exist yet is fine (groups may come later); a folder nobody may read is not."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} = {value!r}: a mapping of folder names to {{mount, read, write}}")
    folders, mounts = [], {}
    for name, spec in value.items():
        here = f"{where}[{name!r}]"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"{where}: the name {name!r} is not allowed: lower-case letters, digits, '.', '_' and "
                             "'-', starting with a letter or digit (it names the folder's volume)")
        if not isinstance(spec, dict):
            raise ValueError(f"{here} = {spec!r}: a mapping with the keys " + ", ".join(KEYS))
        unknown = sorted(set(spec) - set(KEYS))
        if unknown:
            raise ValueError(f"{here}: unknown key {unknown[0]!r}; allowed: " + "; ".join(
                f"{key} ({said})" for key, said in KEYS.items()))
        mount = spec.get("mount")
        normal = posixpath.normpath(mount) if isinstance(mount, str) and mount.startswith("/") else None
        if normal is None or not normal.startswith(HOME + "/") or normal != mount.rstrip("/"):
            raise ValueError(f"{here}['mount'] = {mount!r}: {KEYS['mount']}, as an absolute path without '..'")
        read, write = _groups(spec.get("read", []), f"{here}['read']"), _groups(spec.get("write", []),
                                                                               f"{here}['write']")
        if not read and not write:
            raise ValueError(f"{here}: no group may read or write it; give `read` or `write` a hub group")
        path = spec.get("path", "")
        if path and (not isinstance(path, str) or not path.startswith("/") or posixpath.normpath(path) != path):
            raise ValueError(f"{here}['path'] = {path!r}: an absolute host path without '..'")
        if normal in mounts:
            raise ValueError(f"{here}['mount'] = {mount!r}: {mounts[normal]!r} is mounted there already")
        mounts[normal] = name
        folders.append(SharedFolder(name, normal, read, write, path))
    return folders


def mounts_for(folders: Iterable[SharedFolder], groups: Iterable[str], volume_prefix: str) -> dict[str, dict]:
    """DockerSpawner's binds for someone in ``groups``: ``{source: {"bind": mount, "mode": "rw" | "ro"}}``."""
    groups = set(groups)
    binds = {}
    for folder in folders:
        if groups & set(folder.write):
            binds[folder.source(volume_prefix)] = {"bind": folder.mount, "mode": "rw"}
        elif groups & set(folder.read):
            binds[folder.source(volume_prefix)] = {"bind": folder.mount, "mode": "ro"}
    return binds
