"""Install Debian packages a role needs, only those missing, so a converged host runs no apt at all; and
before any apt run, wait for the package manager to be free and finish what an interrupted run left."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

# Programs that hold dpkg's or apt's locks while they run: a deploy killed midway leaves its apt-get running
# on the host, and Ubuntu's unattended-upgrades runs at boot.
HOLDERS = ("apt", "apt-get", "aptitude", "dpkg", "unattended-upgr")
_HOLDERS_RUNNING = (
    'busy=""; for comm in /proc/[0-9]*/comm; do read -r name 2>/dev/null <"$comm" || continue; '
    f'case "$name" in {"|".join(HOLDERS)}) busy="$busy $name";; esac; done'
)
# dpkg's own test for "dpkg was interrupted, you must manually run 'dpkg --configure -a'".
_INTERRUPTED = '[ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]'


class PackageManagerState(FactBase):
    """Which programs that hold the package manager's locks run now, and whether dpkg's last run was
    interrupted."""

    def command(self) -> str:
        return f'{_HOLDERS_RUNNING}; echo "busy=$busy"; if {_INTERRUPTED}; then echo interrupted=1; fi'

    def process(self, output) -> dict:
        lines = dict(line.split("=", 1) for line in output if "=" in line)
        return {"busy": sorted(set(lines.get("busy", "").split())), "interrupted": lines.get("interrupted") == "1"}


@operation(is_idempotent=True)
def package_manager_ready(timeout: int = 900):
    """Wait until no other apt or dpkg runs, then finish an interrupted dpkg run (``dpkg --configure -a``,
    keeping the configuration files the host has)."""
    found = host.get_fact(PackageManagerState)
    if not found["busy"] and not found["interrupted"]:
        host.noop("no other apt or dpkg runs and dpkg's last run completed")
        return
    script = (
        f"i=0; while :; do {_HOLDERS_RUNNING}; [ -z \"$busy\" ] && break; "
        f"if [ $i -ge {int(timeout)} ]; then echo \"still running after {int(timeout)} s:$busy\" >&2; exit 1; fi; "
        "sleep 2; i=$((i + 2)); done; "
        f"if {_INTERRUPTED}; then DEBIAN_FRONTEND=noninteractive dpkg --configure -a --force-confdef --force-confold; "
        "fi"
    )
    yield StringCommand("sh", "-c", QuoteString(script))


def missing_packages(packages: list[str]) -> list[str]:
    """Those of ``packages`` that the package database does not have installed."""
    installed = host.get_fact(DebPackages)
    return [package for package in packages if package not in installed]


def lists_read_for(repository, packages: list[str], vendor: str) -> None:
    """apt's lists read again where ``repository`` (the operation that wrote its entry) changed, or where one of
    ``packages`` it brings is missing: a deploy killed after writing the entry but before the lists were read
    would otherwise never read them."""
    missing = missing_packages(packages)
    if missing:
        package_manager_ready(name=f"Package manager free for {vendor}'s packages")
    apt.update(name=f"Update apt lists for {vendor}'s repository", _if=lambda: repository.did_change() or bool(missing))


def ensure_installed(packages: list[str], why: str, recommends: bool = False) -> None:
    # apt.packages(update=True) would refresh the lists on every run; asking the package database
    # first keeps a second run free of changes.
    missing = missing_packages(packages)
    if missing:
        package_manager_ready(name=f"Package manager free for {', '.join(missing)}")
        apt.update(name=f"Update apt lists for {', '.join(missing)}", cache_time=3600)
        apt.packages(name=f"Install {', '.join(missing)} ({why})", packages=missing, no_recommends=not recommends)
