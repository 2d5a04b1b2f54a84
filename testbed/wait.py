"""Waiting for something the test bed cannot be told of, only ask again: one helper for every poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], timeout: float, what: str, interval: float = 1.0) -> T:
    """Ask ``check`` every ``interval`` seconds until it answers something true, and return that; after
    ``timeout`` seconds, TimeoutError naming ``what`` and the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {answer!r})")
        time.sleep(interval)
