"""A step of the images: the gpudockerspawner wheel, built on the controller, put into the hub's build context."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from pyinfra.operations import files


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


def wheel_sha256() -> str:
    return hashlib.sha256(built_wheel().read_bytes()).hexdigest()


def ensure_wheel(context_dir: str) -> None:
    wheel = built_wheel()
    files.put(name=f"Spawner wheel {wheel.name}", src=str(wheel), dest=f"{context_dir}/{wheel.name}", mode="644")
