"""What a restore extracts as root on the host: every member of an archive's inner tars is checked before anything
changes (the hub image's Python has no extraction filter), and what is extracted loses setuid bits and group or
other write bits, as Python's 'tar' filter does. The archive tool is the one the hub image runs."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from jupyterhub_gpu_hub import archive as archive_tool


def inner_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as packed:
        for info, data in members:
            info.size = len(data)
            packed.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def entry(name: str, kind=tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


def test_a_home_with_a_virtualenv_comes_back_without_setuid_bits(tmp_path):
    packed = inner_archive(tmp_path / "home.tar.gz", [
        (entry(".", tarfile.DIRTYPE, mode=0o755), b""),
        (entry("./notes.txt"), b"mine"),
        (entry("./venv/bin/python", tarfile.SYMTYPE, "/usr/bin/python3"), b""),
        (entry("./tool", mode=0o4777), b"#!/bin/sh\n"),
        (entry("./copy.txt", tarfile.LNKTYPE, "./notes.txt"), b""),
    ])
    home = tmp_path / "home"
    home.mkdir()
    (home / "old.txt").write_text("replaced by the archive")
    archive_tool._replace_contents(home, packed)
    assert sorted(path.name for path in home.iterdir()) == ["copy.txt", "notes.txt", "tool", "venv"]
    assert (home / "venv" / "bin" / "python").readlink() == Path("/usr/bin/python3")
    assert (home / "tool").stat().st_mode & 0o7777 == 0o755
    assert (home / "copy.txt").read_text() == "mine"


@pytest.mark.parametrize(("members", "said"), [
    ([entry("/etc/cron.d/x")], "/etc/cron.d/x is an absolute path or '..'"),
    ([entry("./../../etc/passwd")], "./../../etc/passwd is an absolute path or '..'"),
    ([entry("./disk", tarfile.BLKTYPE)], "./disk is a device file or FIFO"),
    ([entry("./shadow", tarfile.LNKTYPE, "/etc/shadow")],
     "./shadow is a hard link to /etc/shadow, outside the archive"),
    ([entry("./etc", tarfile.SYMTYPE, "/etc"), entry("./etc/passwd")], "./etc/passwd is a path through the link etc"),
    ([entry("./notes", tarfile.SYMTYPE, "/backup/install/secrets/cookie_secret"), entry("./notes")],
     "./notes is in the archive twice"),
    ([entry("./a"), entry("a")], "a is in the archive twice"),
    ([entry("./etc", tarfile.SYMTYPE, "/etc"), entry("./mine", tarfile.LNKTYPE, "./etc/passwd")],
     "./mine is a hard link through the link etc"),
    ([entry("./s", tarfile.SYMTYPE, "/etc/passwd"), entry("./h", tarfile.LNKTYPE, "s")],
     "./h is a hard link through the link s"),
], ids=["absolute", "dot-dot", "device", "hard link out", "through a link", "a file after a link of its name",
        "a name twice", "hard link through a link", "hard link to a link"])
def test_a_crafted_archive_is_refused_before_anything_is_removed(tmp_path, members, said):
    packed = inner_archive(tmp_path / "home.tar.gz", [(member, b"x") for member in members])
    home = tmp_path / "home"
    home.mkdir()
    (home / "kept.txt").write_text("still here")
    with pytest.raises(SystemExit, match=f"home.tar.gz: {said}; nothing was restored"):
        archive_tool._replace_contents(home, packed)
    assert [path.name for path in home.iterdir()] == ["kept.txt"]


def test_a_file_after_a_link_of_its_name_would_write_through_the_link_and_is_refused(tmp_path):
    """What the refusal prevents, shown on this Python: extracted as the hub image's Python would, the second
    member writes the host file the first points at."""
    outside = tmp_path / "outside"
    outside.write_text("the host's own file")
    packed = inner_archive(tmp_path / "home.tar.gz", [(entry("./notes", tarfile.SYMTYPE, str(outside)), b""),
                                                      (entry("./notes"), b"written through the link")])
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(SystemExit, match="./notes is in the archive twice"):
        archive_tool._replace_contents(home, packed)
    assert outside.read_text() == "the host's own file"
    if not hasattr(tarfile, "tar_filter"):
        return
    unfiltered = tmp_path / "unfiltered"
    with tarfile.open(packed) as archive:
        archive.extractall(unfiltered, filter="fully_trusted")
    assert outside.read_text() == "written through the link", "without the check the link is written through"


def test_only_the_state_directories_of_the_install_archive_are_restored(tmp_path):
    """An install archive holding more than secrets, ca, tls and acme (the archive tool itself, say, which runs
    as root at the next backup) restores those four and nothing else."""
    packed = inner_archive(tmp_path / "install.tar.gz", [
        (entry("./secrets", tarfile.DIRTYPE, mode=0o700), b""),
        (entry("./secrets/cookie_secret", mode=0o600), b"restored secret"),
        (entry("./bin", tarfile.DIRTYPE, mode=0o755), b""),
        (entry("./bin/jupyterhub-gpu-archive", mode=0o755), b"#!/bin/sh\necho crafted\n"),
        (entry("./compose.yaml"), b"services: {}"),
    ])
    install = tmp_path / "install"
    (install / "bin").mkdir(parents=True)
    (install / "bin" / "jupyterhub-gpu-archive").write_text("the deploy's own")
    archive_tool._replace_contents(install, packed, archive_tool.INSTALL_STATE)
    assert (install / "secrets" / "cookie_secret").read_text() == "restored secret"
    assert (install / "bin" / "jupyterhub-gpu-archive").read_text() == "the deploy's own"
    assert not (install / "compose.yaml").exists()


def test_an_outer_member_whose_name_leaves_the_work_directory_is_refused(tmp_path):
    import hashlib
    import json

    data = b"crafted"
    name = "hub/../../escaped"
    manifest = {"format": archive_tool.FORMAT, "files": {name: {"size": len(data),
                                                                  "sha256": hashlib.sha256(data).hexdigest()}}}
    path = tmp_path / "archives" / "crafted.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as archive:
        for member, content in (("manifest.json", json.dumps(manifest).encode()), (name, data)):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    work = tmp_path / "archives" / "work"
    work.mkdir()
    with pytest.raises(SystemExit, match=r"hub/\.\./\.\./escaped is an absolute path or '\.\.'"):
        archive_tool.verify(str(path), work)
    assert not (tmp_path / "escaped").exists()


def _packed(home: Path, tmp_path: Path) -> dict[str, tarfile.TarInfo]:
    destination = tmp_path / "home.tar.gz"
    archive_tool.pack(str(home), str(destination))
    with tarfile.open(destination) as archive:
        return {member.name: (member, archive.extractfile(member).read() if member.isfile() else b"")
                for member in archive}


def test_a_home_that_changes_while_it_is_packed_is_packed_without_following_a_link_or_waiting(tmp_path, monkeypatch):
    """A person's server runs while the backup packs their home: between the packer's look at an entry and its read,
    a file vanishes, becomes a link to a secret, or shrinks; a FIFO is never opened."""
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "cookie_secret"
    secret.write_bytes(b"the hub's secret")
    for name in ("kept", "vanishes", "becomes-a-link", "shrinks"):
        (home / name).write_bytes(b"x" * 1000)
    os.mkfifo(home / "pipe")
    look = tarfile.TarFile.gettarinfo

    def look_then_change(self, name=None, arcname=None, fileobj=None):
        info = look(self, name, arcname, fileobj)
        path = Path(name)
        if path.name == "vanishes":
            path.unlink()
        elif path.name == "becomes-a-link":
            path.unlink()
            path.symlink_to(secret)
        elif path.name == "shrinks":
            path.write_bytes(b"y" * 10)
        return info

    monkeypatch.setattr(tarfile.TarFile, "gettarinfo", look_then_change)
    listed = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed(path) + (["gone-before-its-look"] if path == home else []))
    members = _packed(home, tmp_path)
    assert sorted(members) == [".", "./kept", "./pipe", "./shrinks"]
    assert members["./kept"][1] == b"x" * 1000
    assert members["./shrinks"][1] == b"y" * 10 + bytes(990), "the size tar's header gave, padded"
    assert members["./pipe"][0].isfifo()
    assert not any(b"secret" in content for _, content in members.values())
