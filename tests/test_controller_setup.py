"""bin/setup-controller on a controller without dpkg (macOS with Homebrew, say): it installs nothing and asks for no
root; where python3, ssh and zstd are there it goes on to .venv, where one is missing it says which."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ["requirements.txt", "requirements-test.txt", "docs/requirements.txt", "spawner/pyproject.toml"]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The script and the files its .venv is made from, with a .venv already made from them (its stamp matches)."""
    repo = tmp_path / "checkout"
    for name in ["bin/setup-controller", *REQUIREMENTS]:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / ".venv/bin").mkdir(parents=True)
    (repo / ".venv/bin/python").symlink_to(sys.executable)
    files = sorted((repo).glob("requirements*.txt")) + [repo / "docs/requirements.txt", repo / "spawner/pyproject.toml"]
    stamp = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    (repo / ".venv/.requirements.txt.sha256").write_text(stamp + "\n")
    return repo


def path_without(tmp_path: Path, *left_out: str) -> str:
    """A PATH of this machine's programs but ``left_out`` and dpkg (no Debian here), python3 this test's Python."""
    programs = tmp_path / "programs"
    programs.mkdir(parents=True)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(directory).iterdir():
            name = program.name
            if name in left_out or name.startswith("dpkg") or (programs / name).exists():
                continue
            (programs / name).symlink_to(program)
    (programs / "python3").unlink(missing_ok=True)
    (programs / "python3").symlink_to(sys.executable)
    return str(programs)


def test_without_dpkg_it_installs_nothing_and_uses_the_programs_that_are_there(checkout, tmp_path):
    done = subprocess.run([checkout / "bin/setup-controller"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path_without(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "root" not in done.stderr + done.stdout and "installing" not in done.stdout


def test_without_dpkg_a_missing_program_is_named_with_how_to_get_it(checkout, tmp_path):
    done = subprocess.run([checkout / "bin/setup-controller"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path_without(tmp_path, "zstd")})
    assert done.returncode == 1
    assert done.stderr == ("missing: zstd; install them with this system's package manager (on macOS: brew install "
                           "python zstd)\n")
    testbed = subprocess.run([checkout / "bin/setup-controller", "--testbed"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PATH": path_without(tmp_path / "again")})
    assert testbed.returncode == 1 and "the test bed needs Debian or Ubuntu" in testbed.stderr
