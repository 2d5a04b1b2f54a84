"""Ensure the shared folders' volumes (``shared_folders``): each made once, writable by the servers' user, and
never touched again: what a group put there is theirs (a backup keeps it, a restore brings it back first)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.facts.docker import DockerVolume

from gpudockerspawner.shared_folders import parse_shared_folders
from jupyterhub_gpu.target import Target

# The single-user image's jovyan: the user every server runs as (start-singleuser.sh).
SERVER_UID = 1000


def volume_prefix(target: Target) -> str:
    return f"{target.settings.compose_project}-shared-"


@operation(is_idempotent=True)
def volume_made(volume: str, image: str):
    """A shared folder's volume, made writable by the servers' user and its group (setgid, group-writable)."""
    if host.get_fact(DockerVolume, object_id=volume):
        host.noop(f"shared folder volume {volume} is present")
        return
    yield StringCommand("docker", "volume", "create", "--label", "jupyterhub-gpu.shared-folder=1",
                        QuoteString(volume), ">/dev/null", "&&", "docker", "run", "--rm", "--network", "none",
                        "--user", "0", "--entrypoint", "sh", "-v", QuoteString(f"{volume}:/folder"), QuoteString(image),
                        "-c", QuoteString(f"chown {SERVER_UID}:{SERVER_UID} /folder && chmod 2775 /folder"))


@deploy("Shared folders")
def ensure_shared_folders(target: Target, singleuser_image: str) -> None:
    for folder in parse_shared_folders(target.settings.shared_folders):
        if not folder.path:  # a host path is the admin's own storage, made and kept by them
            volume_made(name=f"Shared folder {folder.name}", volume=folder.source(volume_prefix(target)),
                        image=singleuser_image)
