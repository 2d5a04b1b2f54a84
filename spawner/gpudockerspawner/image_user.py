"""Who a server of an image made elsewhere runs as: the uid its ``USER`` resolves to in the image itself."""

from __future__ import annotations

import io
import tarfile

from docker.errors import NotFound


def resolved_uid(user: str, passwd: str | None) -> int | None:
    """The uid of an image's ``USER`` (``name``, ``uid``, ``name:group`` or ``uid:gid``; unset is root) as the
    image's own ``/etc/passwd`` (``passwd``) resolves it, or None where the name is not there (Docker would
    refuse to start it). Every spelling of root comes out as 0: ``0``, ``00``, ``root``, or any other name the
    image gives uid 0."""
    name = user.split(":", 1)[0].strip()
    if name in ("", "root"):
        return 0
    if name.isdigit():
        return int(name)
    for line in (passwd or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def passwd_of(docker, image: str) -> str | None:
    """The image's ``/etc/passwd`` (None where it has none), read from a container made and never started.
    ``docker`` is docker-py's low-level client."""
    container = docker.create_container(image, command=["true"], entrypoint=[], network_disabled=True)
    try:
        try:
            stream, _ = docker.get_archive(container["Id"], "/etc/passwd")
        except NotFound:  # the image has no passwd file
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.next()
            handle = archive.extractfile(member) if member is not None and member.isfile() else None
            return handle.read().decode(errors="replace") if handle else None
    finally:
        docker.remove_container(container["Id"], force=True)
