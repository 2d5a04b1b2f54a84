"""A step of the images: the gpudockerspawner wheel, built on the controller for the hub image's build context."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPAWNER_SOURCE = REPO / "spawner"
WHEELS = REPO / ".build" / "wheels"


@functools.cache
def built_wheel() -> Path:
    """The wheel of spawner/, built once per run; hatchling makes it byte-for-byte reproducible."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WHEELS) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--wheel-dir", tmp, str(SPAWNER_SOURCE)],
            check=True,
        )
        (wheel,) = Path(tmp).glob("gpudockerspawner-*.whl")
        final = WHEELS / wheel.name
        wheel.replace(final)
    return final
