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
