"""Build each image once, on the controller's Docker engine, and ship it to the targets that lack its tag:
``docker save | zstd`` on the controller, the archive over the deploy's own connection, ``docker load`` on the
target. Five targets then build nothing; a target that has the tag receives nothing."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand

from jupyterhub_gpu import remote
from jupyterhub_gpu.templates import render
from roles.images.recipes import HOST_CA_BUNDLE, TEMPLATES, BaseRecipe, ImageRecipe

BUILDS = Path(__file__).resolve().parents[2] / ".build" / "images"
# Hosts deploy in parallel (greenlets): the first one that needs an image builds it, the others wait.
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


class ControllerBuildError(RuntimeError):
    pass


@functools.cache
def engine_version() -> str | None:
    """The controller's Docker engine, or None where it has none that answers."""
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


@functools.cache
def engine_architecture() -> str:
    """The architecture the controller's engine builds for, as ``uname -m`` says it ("x86_64", "aarch64")."""
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.Architecture}}"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return machine(result.stdout.strip()) if result.returncode == 0 else ""


def machine(arch: str) -> str:
    """Docker's and Debian's names of an architecture as ``uname -m`` says it."""
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


@functools.cache
def ca_bundle_sha256() -> str:
    path = Path(HOST_CA_BUNDLE)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


@contextlib.contextmanager
def _lock(key: str):
    """Held by one deploy of this controller at a time, for ``key``: the hosts of one run (greenlets), and other
    runs side by side (processes), make each image and archive once."""
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    BUILDS.mkdir(parents=True, exist_ok=True)
    with lock, open(BUILDS / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".lock"), "w") as held:
        while True:  # polled: a blocking flock would stop every greenlet of this deploy while another one builds
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.5)
        yield


def _present(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _run(command: list[str], what: str, **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise ControllerBuildError(f"{what} failed on the controller:\n{(result.stdout + result.stderr)[-4000:]}")


def ensure_base(base: BaseRecipe) -> None:
    with _lock(base.tag):
        if _present(base.tag):
            return
        pulled = subprocess.run(["docker", "pull", "-q", base.ref], capture_output=True).returncode == 0
        if pulled:
            _run(["docker", "tag", base.ref, base.tag], f"tagging {base.ref}")
            return
        if base.fallback == "none":
            raise ControllerBuildError(f"cannot pull base image {base.ref} and base_image_fallback is 'none'")
        if os.geteuid() != 0:
            raise ControllerBuildError(f"cannot pull base image {base.ref}, and building it with debootstrap on the "
                                       "controller needs root: run the deploy as root, or set image_build: target")
        logger.warning(f"cannot pull {base.ref}: building the base image {base.tag} with debootstrap from "
                       f"{base.mirror} ({base.suite}) on the controller instead")
        script = render(TEMPLATES, "debootstrap.sh.j2", suite=base.suite, mirror=base.mirror,
                        components=base.components, tag=base.tag)
        _run(["sh", "-c", script], f"debootstrap of {base.suite} from {base.mirror}")


def ensure_built(recipe: ImageRecipe, base: BaseRecipe) -> None:
    ensure_base(base)
    with _lock(recipe.tag):
        if _present(recipe.tag):
            return
        context = BUILDS / recipe.tag.replace("/", "-").replace(":", "-")
        for relative, content in recipe.files.items():
            path = context / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        (context / "ca").mkdir(exist_ok=True)
        if recipe.builder_ca:
            (context / "ca" / "host.pem").write_bytes(Path(HOST_CA_BUNDLE).read_bytes())
        logger.info(f"--> building {recipe.tag} on the controller (once for every target that lacks it)")
        if recipe.large:
            _build_showing_progress(recipe, context)
        else:
            _run(["docker", "build", "-q", "-t", recipe.tag, str(context)], f"the build of {recipe.tag}")


def _build_showing_progress(recipe: ImageRecipe, context: Path, every: float = 30) -> None:
    """A long build says where it is: each build step as it starts, and its last line every ``every`` seconds,
    so that ten minutes of downloading CUDA libraries do not look like a hang."""
    started = time.monotonic()
    shown = started
    tail: list[str] = []
    process = subprocess.Popen(["docker", "build", "-t", recipe.tag, str(context)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
    for line in process.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        now = time.monotonic()
        if line.startswith("Step ") or now - shown >= every:
            shown = now
            logger.info(f"    {recipe.title} image, {now - started:.0f} s: {line[:160]}")
    if process.wait() != 0:
        raise ControllerBuildError(f"the build of {recipe.tag} failed on the controller:\n" + "\n".join(tail))
    logger.info(f"    {recipe.title} image built in {time.monotonic() - started:.0f} s")


def archive(recipe: ImageRecipe) -> Path:
    """``docker save`` of the image, compressed with zstd, made once and kept beside its build context."""
    path = BUILDS / (recipe.tag.replace("/", "-").replace(":", "-") + ".tar.zst")
    with _lock(f"{recipe.tag} archive"):
        if not path.exists():
            partial = path.with_suffix(".partial")
            _run(["bash", "-c", 'set -o pipefail; docker save "$0" | zstd -q -T0 -3 -f -o "$1"', recipe.tag,
                  str(partial)],
                 f"saving {recipe.tag}")
            partial.replace(path)
    return path


STAGING = "/var/tmp"


def ship(state, host, recipe: ImageRecipe, base: BaseRecipe) -> bool:
    """The pyinfra function command that puts ``recipe``'s image on ``host``. A failure is said in one
    message (no traceback) and leaves nothing behind on the host; what runs there is not touched.

    The archive goes, as the SSH user, into a directory made fresh for it (0700, under STAGING), and is
    loaded from there as the host's operations run (with sudo where the inventory says so) once its sha256
    is the one sent: nobody else on the host can read, replace or pre-place it."""
    try:
        ensure_built(recipe, base)
        if type(host.connector).__name__ == "LocalConnector":
            return True  # the controller is the host: the image was built where it is needed
        local = archive(recipe)
    except ControllerBuildError as error:
        host.log(str(error), log_func=logger.error)
        return False
    size = local.stat().st_size
    made, output = host.run_shell_command(StringCommand("mktemp", "-d",
                                                        QuoteString(f"{STAGING}/jupyterhub-gpu-image.XXXXXXXX")))
    if not made:
        host.log(f"could not make a directory for the {recipe.title} image in {STAGING} on {host.name}: "
                 f"{output.stderr}; the hub was left as it was", log_func=logger.error)
        return False
    staging = output.stdout.strip()
    staged = f"{staging}/{local.name}"
    try:
        copied = host.put_file(str(local), staged)
    except OSError:  # paramiko's SFTP raises where the remote write fails, a full disk among others
        copied = False
    if not copied:
        host.run_shell_command(StringCommand("rm", "-rf", QuoteString(staging)))
        host.log(f"could not copy the {recipe.title} image ({size // 2**20} MiB compressed) to {STAGING} on "
                 f"{host.name}{_space_left(host, STAGING, size)}; the hub was left as it was",
                 log_func=logger.error)
        return False
    loaded, output = remote.run(state, host, StringCommand(
        "echo", QuoteString(f"{_sha256(local)}  {staged}"), "|", "sha256sum", "-c", "--quiet", "&&",
        "zstd", "-dc", QuoteString(staged), "|", "docker", "load", "-q", ";",
        "status=$?;", "rm", "-rf", QuoteString(staging), ";", "exit", "$status"))
    if not loaded:
        error = output.stderr
        if "no space left on device" in error.lower():
            root = _docker_root(state, host)
            error = f"Docker's data directory {root} is full{_space_left(host, root, _image_size(recipe.tag))}"
        host.log(f"docker load of {recipe.tag} failed on {host.name}: {error}; the hub was left as it was",
                 log_func=logger.error)
        return False
    host.log(f"{recipe.tag} shipped from the controller ({size // 2**20} MiB compressed)")
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive_file:
        for block in iter(lambda: archive_file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _space_left(host, path: str, needed: int) -> str:
    """", the disk is full: ... MiB free at <path>, ... MiB needed" where that explains the failure."""
    ok, output = host.run_shell_command(StringCommand("df", "-Pk", QuoteString(path)))
    try:
        free = int(output.stdout_lines[-1].split()[3]) * 1024
    except (IndexError, ValueError):
        return ""
    if not ok or free >= needed:
        return ""
    return (f": the disk is full ({free // 2**20} MiB free at {path}, {needed // 2**20} MiB needed); free some "
            "space there (`docker image prune` removes images no container uses) and deploy again")


def _docker_root(state, host) -> str:
    ok, output = remote.run(state, host, StringCommand("docker", "info", "--format", "{{.DockerRootDir}}"))
    return output.stdout.strip() if ok and output.stdout.strip() else "/var/lib/docker"


def _image_size(tag: str) -> int:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True,
                            text=True)
    return int(result.stdout.strip() or 0) if result.returncode == 0 else 0
