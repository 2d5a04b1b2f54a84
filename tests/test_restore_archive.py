"""What a restore extracts as root on the host: every member of an archive's inner tars is checked before anything
changes (the hub image's Python has no extraction filter), and what is extracted loses setuid bits and group or
other write bits, as Python's 'tar' filter does. The archive tool is the one the hub image runs."""

import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "roles" / "backup" / "files" / "archive.py"
spec = importlib.util.spec_from_file_location("archive_tool", TOOL)
archive_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(archive_tool)


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
    ([entry("./shadow", tarfile.LNKTYPE, "/etc/shadow")], "./shadow is a hard link to /etc/shadow, outside the archive"),
    ([entry("./etc", tarfile.SYMTYPE, "/etc"), entry("./etc/passwd")], "./etc/passwd is a path through the link etc"),
], ids=["absolute", "dot-dot", "device", "hard link out", "through a link"])
def test_a_crafted_archive_is_refused_before_anything_is_removed(tmp_path, members, said):
    packed = inner_archive(tmp_path / "home.tar.gz", [(member, b"x") for member in members])
    home = tmp_path / "home"
    home.mkdir()
    (home / "kept.txt").write_text("still here")
    with pytest.raises(SystemExit, match=f"home.tar.gz: {said}; nothing was restored"):
        archive_tool._replace_contents(home, packed)
    assert [path.name for path in home.iterdir()] == ["kept.txt"]
