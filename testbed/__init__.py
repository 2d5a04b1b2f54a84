"""The project's test bed: a Docker engine, images, throwaway targets, a deploy runner, hub clients."""

import fcntl
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Keys, CA copies and target lists of test runs; ignored by git.
STATE = REPO / ".testbed"
# One run of the tests, shared by its pytest-xdist workers (xdist sets it for them), or this process alone.
RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


@contextmanager
def machine_lock(name: str):
    """Held by one process of this machine at a time: the test bed's workers start one engine and make each
    image and repository once, not side by side."""
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def checkout_files() -> list[Path]:
    """The checkout's files as a clone of it would hold them, with uncommitted work (tracked and untracked, not
    what git ignores), relative to REPO."""
    import subprocess

    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                           check=True, cwd=REPO).stdout.splitlines()
    return [Path(name) for name in names if (REPO / name).is_file()]
