"""Facts about a target host that the roles decide on, each gathered in one round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.facts.server import Port

from gpudockerspawner.nvidia import DriverOutputError, Unit, units

_PROFILE_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
echo "os_codename=${VERSION_CODENAME:-${UBUNTU_CODENAME:-}}"
echo "arch=$(uname -m)"
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "cpus=$(nproc 2>/dev/null)"
echo "memory_mib=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null)"
# WSL2: its kernel says so; its init makes /run/WSL.
if grep -qi microsoft /proc/sys/kernel/osrelease 2>/dev/null || [ -d /run/WSL ]; then
  echo wsl=1
  distribution=${WSL_DISTRO_NAME:-}
  # sudo drops WSL's variables (`sudo bin/deploy-local`); the Windows path of the root names the distribution too:
  # \\wsl.localhost\<distribution>\ (\\wsl$\<distribution>\ on older Windows).
  if [ -z "$distribution" ] && command -v wslpath >/dev/null 2>&1; then
    distribution=$(wslpath -w / 2>/dev/null | tr -d '\r' | awk -F'\\' '{print $4}')
  fi
  printf 'wsl_distribution=%s\n' "$distribution"
  # Windows, through WSL's interop: its programs run from here only where interop is on.
  system32=$(dirname "$(command -v cmd.exe 2>/dev/null || echo /mnt/c/Windows/System32/cmd.exe)")
  who=$("$system32/cmd.exe" /d /c 'echo %USERDOMAIN%\%USERNAME%^|%USERPROFILE%' 2>/dev/null </dev/null | tr -d '\r')
  if [ "${who#*|}" != "$who" ]; then
    # printf, not echo: sh's echo reads the backslash of DOMAIN\user as an escape.
    printf 'windows_system32=%s\n' "$system32"
    printf 'windows_user=%s\n' "${who%%|*}"
    profile=${who#*|}
    if command -v wslpath >/dev/null 2>&1; then profile=$(wslpath -u "$profile" 2>/dev/null); fi
    printf 'windows_profile=%s\n' "$profile"
    if "$system32/whoami.exe" /groups 2>/dev/null </dev/null | grep -q S-1-16-12288; then echo windows_elevated=1; fi
  fi
else
  echo wsl=0
fi
if command -v docker >/dev/null 2>&1; then
  echo docker_cli=1
  echo "docker_server=$(docker info --format '{{.ServerVersion}}' 2>/dev/null)"
  echo "docker_os=$(docker info --format '{{.OperatingSystem}}' 2>/dev/null)"
  echo "compose=$(docker compose version --short 2>/dev/null)"
fi
# The engine the distribution would install, where apt has read its lists.
echo "docker_io_candidate=$(apt-cache policy docker.io 2>/dev/null | awk '/Candidate:/ {print $2}')"
if command -v ip >/dev/null 2>&1; then
  ip -4 -o addr show 2>/dev/null | awk '{print "ipv4=" $2 " " $4}'
fi
grep -h -E '^[[:space:]]*(deb[[:space:]]|URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
  /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^/apt_source=/'
# IPsec ESP, which an encrypted overlay network needs: y or m (built in, a module), n (not built), or unknown.
for config in "/boot/config-$(uname -r)" /proc/config.gz; do
  [ -r "$config" ] || continue
  gzip -dcf "$config" 2>/dev/null | sed -n 's/^# CONFIG_INET_ESP is not set/kernel_esp=n/p; s/^CONFIG_INET_ESP=/kernel_esp=/p'
  break
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  echo "ca_bundle_sha256=$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)"
fi
"""  # noqa: E501 (a script's own lines)

# Interfaces Docker makes; their addresses change when networks come and go, so a
# certificate that named them would be re-issued on every run.
_DOCKER_INTERFACE_PREFIXES = ("docker", "br-", "veth", "lo")


@dataclass(frozen=True)
class HostProfile:
    os_id: str = ""
    os_version: str = ""
    os_codename: str = ""
    arch: str = ""
    pid1: str = ""
    hostname: str = ""
    cpus: int = 0
    memory_mib: int = 0
    wsl: bool = False
    wsl_distribution: str = ""
    # Set where WSL's interop runs Windows programs: their folder, the user, their profile (as a Linux path).
    windows_system32: str = ""
    windows_user: str = ""
    windows_profile: str = ""
    windows_elevated: bool = False
    docker_cli: bool = False
    docker_server: str = ""
    docker_os: str = ""
    compose: str = ""
    docker_io_candidate: str = ""
    ipv4: tuple[str, ...] = ()
    apt_mirrors: tuple[str, ...] = ()
    ca_bundle_sha256: str = ""
    # The kernel's CONFIG_INET_ESP: "y", "m", "n", or "" where the kernel's configuration cannot be read.
    kernel_esp: str = ""

    @property
    def systemd(self) -> bool:
        return self.pid1 == "systemd"

    @property
    def docker_desktop(self) -> bool:
        return self.docker_os == "Docker Desktop"


def parse_profile(lines: list[str]) -> HostProfile:
    values: dict = {"ipv4": [], "apt_mirrors": []}
    for line in lines:
        key, _, value = line.partition("=")
        value = value.strip()
        if key == "ipv4":
            interface, _, cidr = value.partition(" ")
            if not interface.startswith(_DOCKER_INTERFACE_PREFIXES):
                values["ipv4"].append(cidr.split("/")[0])
        elif key == "apt_source":
            uri = _first_uri(value)
            if uri and "security" not in uri and uri not in values["apt_mirrors"]:
                values["apt_mirrors"].append(uri)
        elif key in ("wsl", "docker_cli", "windows_elevated"):
            values[key] = value == "1"
        elif key in ("cpus", "memory_mib"):
            values[key] = int(value) if value.isdigit() else 0
        elif key in HostProfile.__dataclass_fields__:
            values[key] = value
    values["ipv4"] = tuple(values["ipv4"])
    values["apt_mirrors"] = tuple(values["apt_mirrors"])
    return HostProfile(**values)


def _first_uri(source_line: str) -> str | None:
    words = source_line.replace("URIs:", "").split()
    for word in words:
        if word.startswith(("http://", "https://")):
            return word.rstrip("/")
    return None


@dataclass(frozen=True)
class Login:
    user: str
    uid: int
    # Whether the host has sudo, and whether it lets this user become root without a password.
    sudo: bool
    sudo_without_password: bool


class LoginUser(FactBase):
    """Who the deploy logs in as, gathered as that user (never through sudo)."""

    def command(self) -> str:
        return ('echo "$(id -un) $(id -u) $(command -v sudo >/dev/null 2>&1 && echo 1 || echo 0) '
                '$(sudo -n true >/dev/null 2>&1 && echo 1 || echo 0)"')

    def process(self, output) -> Login:
        user, uid, sudo, without_password = "".join(output).split()
        return Login(user, int(uid), sudo == "1", without_password == "1")


class EffectiveUid(FactBase):
    """The uid the deploy's commands run as (with sudo where the inventory says so), or None where they cannot
    run at all (sudo refused)."""

    def command(self) -> str:
        return "id -u"

    def process(self, output):
        uid = "".join(output).strip()
        return int(uid) if uid.isdigit() else None


class IdHolders(FactBase):
    """The host's accounts and groups that hold a numeric id: {"users": [...], "groups": [...]}."""

    @staticmethod
    def default() -> dict:
        # pyinfra gives a fact that printed nothing its default: here, nobody holds the id.
        return {"users": [], "groups": []}

    def command(self, id_number: int) -> str:
        return (f"getent passwd {int(id_number)} | cut -d: -f1 | sed 's/^/user /'; "
                f"getent group {int(id_number)} | cut -d: -f1 | sed 's/^/group /'; true")

    def process(self, output) -> dict:
        holders = {"users": [], "groups": []}
        for line in output:
            kind, _, name = line.strip().partition(" ")
            if name:
                holders[f"{kind}s"].append(name)
        return holders


class AccountIds(FactBase):
    """A host account's uid and its same-named group's gid: {"uid": int | None, "gid": int | None}."""

    @staticmethod
    def default() -> dict:
        return {"uid": None, "gid": None}

    def command(self, account: str) -> StringCommand:
        return StringCommand("sh", "-c", QuoteString(
            f"echo uid=$(getent passwd {account} | cut -d: -f3); echo gid=$(getent group {account} | cut -d: -f3)"))

    def process(self, output) -> dict:
        ids = dict(line.strip().partition("=")[::2] for line in output if "=" in line)
        return {key: int(ids[key]) if ids.get(key, "").isdigit() else None for key in ("uid", "gid")}


class EngineRuntimes(FactBase):
    """The runtimes the running Docker engine knows, and its default one: {"runtimes": [...], "default": "runc"};
    None where no engine answers."""

    def command(self) -> str:
        return ("docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}|{{.DefaultRuntime}}' "
                "2>/dev/null || true")

    def process(self, output):
        names, _, default = "".join(output).strip().partition("|")
        return {"runtimes": names.split(), "default": default} if default else None


class TargetProfile(FactBase):
    """OS, WSL, init system, Docker engine and Compose, addresses and apt mirrors of the host."""

    def command(self) -> str:
        return _PROFILE_SCRIPT

    def process(self, output) -> HostProfile:
        return parse_profile(list(output))


class DockerServerVersion(FactBase):
    """The version of the Docker engine that answers, or None."""

    def command(self) -> str:
        return "docker info --format '{{.ServerVersion}}' 2>/dev/null || true"

    def process(self, output):
        version = "".join(output).strip()
        return version or None


class ImagesInUse(FactBase):
    """The tags of the given repositories, newest first, and the images that containers were made from:
    {"tags": {repository: [tag, ...]}, "used": [image, ...]}."""

    @staticmethod
    def default() -> dict:
        return {"tags": {}, "used": []}

    def command(self, repositories: list[str]) -> StringCommand:
        filters = []
        for repository in repositories:
            filters += ["--filter", QuoteString(f"reference={repository}")]
        return StringCommand("docker", "image", "ls", *filters, "--format",
                             "'image {{.CreatedAt}}\t{{.Repository}}:{{.Tag}}'",
                             "2>/dev/null", "&&", "docker", "ps", "--all", "--format", "'used {{.Image}}'",
                             "2>/dev/null", "||", "true")

    def process(self, output):
        created, used = [], []
        for line in output:
            kind, _, value = line.strip().partition(" ")
            if kind == "image" and "\t" in value:
                created.append(tuple(value.split("\t", 1)))
            elif kind == "used":
                used.append(value)
        tags: dict[str, list[str]] = {}
        for _, image in sorted(created, reverse=True):
            tags.setdefault(image.rsplit(":", 1)[0], []).append(image)
        return {"tags": tags, "used": used}


class ComposeServices(FactBase):
    """State of each service of a Compose project: {service: state}, from `docker compose ps`."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self, project_directory: str) -> StringCommand:
        return StringCommand("docker", "compose", "--project-directory", QuoteString(project_directory), "ps", "--all",
                             "--format", "json", "2>/dev/null", "||", "true")

    def process(self, output):
        services = {}
        for line in output:
            line = line.strip()
            if not line:
                continue
            parsed = json.loads(line)
            for entry in parsed if isinstance(parsed, list) else [parsed]:
                services[entry["Service"]] = entry.get("Health") or entry["State"]
        return services


# nvidia-smi comes with the driver: on PATH on Linux, in /usr/lib/wsl/lib on WSL2 (from Windows). Its listing and its
# XML query, each line marked with where it came from (L: -L, X: -q -x, E: an error either printed).
_NVIDIA_SMI_SCRIPT = """
smi=$(command -v nvidia-smi || true)
[ -z "$smi" ] && [ -x /usr/lib/wsl/lib/nvidia-smi ] && smi=/usr/lib/wsl/lib/nvidia-smi
[ -z "$smi" ] && exit 0
echo "smi=$smi"
"$smi" -L 2>&1 | sed 's/^/L=/'
"$smi" -q -x 2>&1 | sed 's/^/X=/'
"""

# What the driver hands out (see gpudockerspawner.nvidia): a whole GPU, or one MIG device of a GPU in MIG mode, with
# its index, UUID, model name, memory and, for a MIG device, its profile, share of the GPU and the GPU's UUID.
GPU = Unit


@dataclass(frozen=True)
class GPUInventory:
    nvidia_smi: str = ""
    gpus: tuple[GPU, ...] = ()
    error: str = ""


class NvidiaGPUs(FactBase):
    """What the driver's nvidia-smi hands out: every GPU not in MIG mode, and every MIG device of one in it."""

    def command(self) -> str:
        return _NVIDIA_SMI_SCRIPT

    @staticmethod
    def default() -> GPUInventory:
        return GPUInventory()

    def process(self, output) -> GPUInventory:
        smi, listing, query = "", [], []
        for line in output:
            key, _, value = line.partition("=")
            if key == "smi":
                smi = value.strip()
            elif key == "L":
                listing.append(value)
            elif key == "X":
                query.append(value)
        if not smi:
            return GPUInventory()
        try:
            return GPUInventory(smi, tuple(units("\n".join(listing), "\n".join(query))))
        except DriverOutputError as error:
            return GPUInventory(smi, (), str(error))


@dataclass(frozen=True)
class PortHolding:
    """Who holds a TCP port of the host: nobody (``listening`` false), a process listening (its name and pid), and
    the containers Docker publishes the port for (its own proxy is then that process, where it has one)."""

    listening: bool = False
    process: str = ""
    containers: tuple[str, ...] = ()

    def held_by(self) -> str:
        """The holder in words, for an error message."""
        if self.containers:
            return f"Docker publishes it for the container {', '.join(map(repr, self.containers))}"
        return f"{self.process} holds it" if self.process else "something holds it"


class PublishedFor(FactBase):
    """The containers Docker publishes a host port for. An engine without its userland proxy publishes a port with
    no process listening on it, which pyinfra's ``Port`` fact cannot see."""

    requires_command = "docker"  # no engine yet: nothing published

    def command(self, port: int) -> str:
        return f"docker ps --filter publish={int(port)} --format '{{{{.Names}}}}' 2>/dev/null || true"

    @staticmethod
    def default() -> tuple[str, ...]:
        return ()

    def process(self, output) -> tuple[str, ...]:
        return tuple(line for line in output if line)


def port_holding(port: int) -> PortHolding:
    """Who holds ``port`` of the current host: the process pyinfra's ``Port`` fact finds listening (``ss``), and the
    containers Docker publishes it for."""
    # pyinfra answers a fact whose command printed nothing (nobody listens) with None.
    process, pid = host.get_fact(Port, port=port) or (None, None)
    containers = host.get_fact(PublishedFor, port=port)
    return PortHolding(process is not None or bool(containers), f"{process} (pid {pid})" if process else "",
                       containers)
