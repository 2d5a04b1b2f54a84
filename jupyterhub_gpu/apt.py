"""Install Debian packages a role needs, only those missing, so a converged host runs no apt at all."""

from __future__ import annotations

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt


def ensure_installed(packages: list[str], why: str, recommends: bool = False) -> None:
    # apt.packages(update=True) would refresh the lists on every run; asking the package database
    # first keeps a second run free of changes.
    missing = [package for package in packages if package not in host.get_fact(DebPackages)]
    if missing:
        apt.update(name=f"Update apt lists for {', '.join(missing)}", cache_time=3600)
        apt.packages(name=f"Install {', '.join(missing)} ({why})", packages=missing, no_recommends=not recommends)
