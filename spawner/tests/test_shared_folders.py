"""Shared folders by group: which mounts a server gets for someone in none, one or two of the groups, and the
settings' refusals (named key, value and what is allowed), on the hub's side and the deploy's."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from conftest import hub_user
from gpudockerspawner import GPUDockerSpawner
from gpudockerspawner.shared_folders import mounts_for, parse_shared_folders

FOLDERS = {
    "course-101": {"mount": "/home/jovyan/shared/course-101", "read": ["students"], "write": ["staff"]},
    "datasets": {"mount": "/home/jovyan/datasets", "read": ["students", "research"], "path": "/srv/datasets"},
}
HOME = {"jupyterhub-gpu-user-ann": {"bind": "/home/jovyan", "mode": "rw"}}


def spawner(*groups: str) -> GPUDockerSpawner:
    return GPUDockerSpawner(user=hub_user("ann", groups), volumes={"jupyterhub-gpu-user-{username}": "/home/jovyan"},
                            shared_folders=FOLDERS, shared_volume_prefix="jupyterhub-gpu-shared-")


def test_a_server_gets_the_folders_of_its_users_groups_read_only_or_writable():
    assert spawner().volume_binds == HOME  # in no group: nothing but the home
    assert spawner("students").volume_binds == {
        **HOME,
        "jupyterhub-gpu-shared-course-101": {"bind": "/home/jovyan/shared/course-101", "mode": "ro"},
        "/srv/datasets": {"bind": "/home/jovyan/datasets", "mode": "ro"},
    }
    # Staff write the course's folder; someone in both groups too (writing wins); research reads the datasets.
    assert spawner("staff").volume_binds == {
        **HOME, "jupyterhub-gpu-shared-course-101": {"bind": "/home/jovyan/shared/course-101", "mode": "rw"}}
    assert spawner("students", "staff").volume_binds["jupyterhub-gpu-shared-course-101"]["mode"] == "rw"
    assert spawner("research", "other").volume_binds == {
        **HOME, "/srv/datasets": {"bind": "/home/jovyan/datasets", "mode": "ro"}}
    assert sorted(spawner("students").volume_mount_points) == [
        "/home/jovyan", "/home/jovyan/datasets", "/home/jovyan/shared/course-101"]


def test_a_group_that_does_not_exist_yet_is_allowed():
    (folder,) = parse_shared_folders({"later": {"mount": "/home/jovyan/later", "write": ["next-year"]}})
    assert mounts_for([folder], ["students"], "p-") == {}
    assert mounts_for([folder], ["next-year"], "p-") == {"p-later": {"bind": "/home/jovyan/later", "mode": "rw"}}


@pytest.mark.parametrize("value, said", [
    ({"c": {"mount": "/home/jovyan/c"}}, "shared_folders['c']: no group may read or write it; give `read` or `write`"),
    ({"c": {"mount": "/data/c", "read": ["s"]}}, "shared_folders['c']['mount'] = '/data/c': where it appears in a "
                                                 "server: a folder inside /home/jovyan (not the home itself)"),
    ({"c": {"mount": "/home/jovyan", "read": ["s"]}}, "shared_folders['c']['mount'] = '/home/jovyan':"),
    ({"c": {"mount": "/home/jovyan/../etc", "read": ["s"]}}, "shared_folders['c']['mount'] = '/home/jovyan/../etc'"),
    ({"c": {"mount": "/home/jovyan/c", "read": "students"}}, "shared_folders['c']['read'] = 'students': a list of "
                                                             "hub group names"),
    ({"c": {"mount": "/home/jovyan/c", "read": ["s"], "owner": "x"}}, "shared_folders['c']: unknown key 'owner'; "
                                                                      "allowed: mount ("),
    ({"Course 1": {"mount": "/home/jovyan/c", "read": ["s"]}}, "shared_folders: the name 'Course 1' is not allowed"),
    ({"a": {"mount": "/home/jovyan/c", "read": ["s"]}, "b": {"mount": "/home/jovyan/c/", "read": ["s"]}},
     "shared_folders['b']['mount'] = '/home/jovyan/c/': 'a' is mounted there already"),
    ({"c": {"mount": "/home/jovyan/c", "read": ["s"], "path": "data"}}, "shared_folders['c']['path'] = 'data': an "
                                                                        "absolute host path"),
])
def test_a_folder_that_cannot_work_is_refused_naming_the_key(value, said):
    with pytest.raises(ValueError) as refused:
        parse_shared_folders(value)
    assert said in str(refused.value)
    with pytest.raises(TraitError) as refused_by_the_hub:
        GPUDockerSpawner(user=hub_user("ann"), shared_folders=value)
    assert f"GPUDockerSpawner.{said}" in str(refused_by_the_hub.value)
