"""Working together: folders a hub group shares, servers people share, notebooks they edit together."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from gpudockerspawner.shared_folders import KEYS, parse_shared_folders
from jupyterhub_gpu.settings.concern import Concern, trait


class SharingSettings(Concern):
    """Folders shared by hub groups; servers shared by people; editing together."""

    title: ClassVar[str] = "Working together"

    shared_folders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Folders hub groups share, mounted into a member's server when it starts: read-only for the "
        "groups in `read`, read-write for those in `write` (writing wins); nobody else gets it. "
        "`{course-101: {mount: /home/jovyan/shared/course-101, read: [students], write: [staff]}}`. Each is a "
        "Docker volume of its own (`<compose_project>-shared-<name>`), made by the deploy writable by the servers' "
        "user and backed up and restored with the homes, or the host path in `path`. A folder's keys: "
        + "; ".join(f"`{key}`: {said}" for key, said in KEYS.items())
        + ". In a cluster each needs a `path` that every GPU node mounts (an NFS export, say).",
        json_schema_extra=trait("GPUDockerSpawner.shared_folders"),
    )

    server_sharing: bool = Field(
        default=True,
        description="People may share their running server (its GPU included) with another person, a hub group, "
        "or by a link, on the sharing page (`/services/gpus/share`, linked from the home page); a guest opens it "
        "as themselves, holding no GPU. Off: nobody may share (JupyterHub's `shares` scope is given to nobody).",
    )
    collaboration: bool = Field(
        default=True,
        description="Real-time collaboration in the built single-user images (`jupyter-collaboration`): people in "
        "one server (its owner and those it is shared with) edit the same notebook and see each other's cursors. "
        "Off: the package is left out of the images.",
    )

    @field_validator("shared_folders")
    @classmethod
    def _shared_folders(cls, value):
        parse_shared_folders(value)
        return value
