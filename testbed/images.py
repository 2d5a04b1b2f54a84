"""Images of the test bed, made locally because no registry is reachable: a debootstrapped Debian, and
target hosts built from it that run sshd and can run their own Docker engine."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker

from jupyterhub_gpu.templates import render
from roles.images import jupyterhub_pin
from roles.images.recipes import FILES as IMAGE_FILES
from roles.images.recipes import SINGLEUSER_PATCH, TEMPLATES
from testbed import machine_lock, wsl
from testbed.nvidia import FAKE_NVIDIA_SMI, fake_nvidia_smi

BASE = "jupyterhub-gpu-testbed/debian:bookworm"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

SSH_HOST_DOCKERFILE = f"""FROM {BASE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      openssh-server iproute2 procps ca-certificates \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && ssh-keygen -A \\
 && echo "LogLevel VERBOSE" > /etc/ssh/sshd_config.d/testbed.conf
# VERBOSE: sshd logs each session it starts, which the deploy benchmark counts.
# Like a workstation behind a TLS-inspecting proxy: the host trusts the proxy's CA.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D", "-e"]
"""

# A host booted by SysV init, as Debian without systemd boots: at each start of the container, runlevel 2's
# start scripts run in order (what /etc/init.d/rc does), then the SSH server the test bed reaches it by.
SYSV_INIT = """#!/bin/sh
for script in /etc/rc2.d/S*; do
  case "$script" in *ssh) continue ;; esac
  [ -x "$script" ] && "$script" start
done >>/var/log/testbed-boot.log 2>&1 </dev/null
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
"""
SSHD_ONLY = 'EXPOSE 22\nCMD ["/usr/sbin/sshd", "-D", "-e"]\n'
TARGET_DOCKERFILE = SSH_HOST_DOCKERFILE.replace(
    SSHD_ONLY, 'COPY testbed-sysv-init /sbin/testbed-sysv-init\nEXPOSE 22\nCMD ["/sbin/testbed-sysv-init"]\n')


def ensure_base(engine: docker.DockerClient, suite: str = "bookworm") -> str:
    """Debian minbase of ``suite`` from the mirror, imported as jupyterhub-gpu-testbed/debian:<suite> (about
    25 s for bookworm, 40 s for trixie; once per machine)."""
    tag = f"{BASE.rsplit(':', 1)[0]}:{suite}"
    with machine_lock(f"base-{suite}"):
        try:
            engine.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            _debootstrapped(suite, tag)
    return tag


def _debootstrapped(suite: str, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="jupyterhub-gpu-testbed-rootfs-", dir="/var/tmp") as root:
        subprocess.run(["debootstrap", "--variant=minbase", suite, root, MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrapped root failed")


# A host booted by systemd, as every Ubuntu and Debian server (and WSL2's Ubuntu) is: systemd is PID 1 and stops
# on SIGRTMIN+3, as `docker stop` then sends. Besides root, it has the accounts people reach servers with:
# `ops` (sudo without a password, as a cloud image's default user), `opspw` (sudo asks for SUDO_PASSWORD) and
# `nosudo` (no sudo rights at all, though sudo asks for its password, the same). sshd takes the test bed's key for
# every account from one root-owned file.
# systemd-modules-load fails in a container (no modules to load there), which would leave the system
# "degraded"; a real host has it.
SUDO_PASSWORD = "testbed-sudo-password"
SYSTEMD_TARGET_DOCKERFILE = """FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv dbus openssh-server sudo iproute2 procps ca-certificates inotify-tools \\
 && rm -rf /var/lib/apt/lists/* \\
 && systemctl enable ssh && systemctl mask systemd-modules-load.service \\
 && printf 'LogLevel VERBOSE\\nAuthorizedKeysFile .ssh/authorized_keys /etc/ssh/testbed_authorized_keys\\n' \\
      > /etc/ssh/sshd_config.d/testbed.conf \\
 && useradd --create-home --shell /bin/bash ops && echo 'ops ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ops \\
 && useradd --create-home --shell /bin/bash opspw && echo 'opspw:{password}' | chpasswd \\
 && echo 'opspw ALL=(ALL) ALL' > /etc/sudoers.d/opspw \\
 && useradd --create-home --shell /bin/bash nosudo && echo 'nosudo:{password}' | chpasswd
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
{extra}ENV container=docker
STOPSIGNAL SIGRTMIN+3
EXPOSE 22
CMD ["/sbin/init"]
"""

# A GPU host before the deploy: the NVIDIA driver is there (its nvidia-smi reports two stand-in GPUs),
# the container toolkit is not: the deploy installs it from the test bed's apt repository.
GPU_TARGET_DOCKERFILE = TARGET_DOCKERFILE.replace("EXPOSE 22", "COPY nvidia-smi /usr/bin/nvidia-smi\nEXPOSE 22")

# Without rfc3987-syntax and the hub's database layer, as the deploy's own single-user image (see
# roles/images/templates/singleuser.Dockerfile.j2), the patch applied by the same lines.
APPLY_PATCH = render(TEMPLATES, "apply-patch.j2", patch_path=f"/tmp/{SINGLEUSER_PATCH}")
SINGLEUSER_DOCKERFILE = f"""FROM {BASE}
COPY ca-certificates.crt /etc/ssl/testbed-ca.pem
COPY {SINGLEUSER_PATCH} /tmp/
ENV PIP_CERT=/etc/ssl/testbed-ca.pem PATH=/opt/venv/bin:$PATH
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv patch \\
 && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /opt/venv \\
 && pip install --no-cache-dir {jupyterhub_pin()} jupyter_server==2.21.1 \\
 && pip uninstall --yes --quiet rfc3987-syntax lark \\
{APPLY_PATCH} && rm /tmp/{SINGLEUSER_PATCH} \\
 && useradd --create-home --uid 1000 jovyan
USER jovyan
WORKDIR /home/jovyan
CMD ["jupyterhub-singleuser"]
"""


# A WSL2 distribution with two stand-in GPUs (the Windows driver's nvidia-smi where WSL puts it) and the
# stand-ins for WSL and Windows of testbed/wsl.py.
WSL_TARGET_DOCKERFILE = SSH_HOST_DOCKERFILE.replace(SSHD_ONLY, wsl.DOCKERFILE_ADDITIONS)


def ensure_target_image(engine: docker.DockerClient, gpus: bool | list = False, wsl_host: bool = False,
                        systemd_suite: str | None = None) -> str:
    """A fresh Debian 12 host with sshd; with ``gpus``, a driver's nvidia-smi reporting stand-in GPUs (FAKE_GPUS, or
    the list given: testbed/nvidia.py's StandinGPU, as LAB_GPUS); with ``wsl_host``, a WSL2 distribution (with GPUs)
    whose Windows and WSL are stand-ins; with ``systemd_suite``, a host of that Debian release booted by systemd."""
    driver = fake_nvidia_smi(gpus) if isinstance(gpus, list) else FAKE_NVIDIA_SMI
    if systemd_suite:
        if wsl_host:  # WSL2 with [boot] systemd=true, as Ubuntu's distribution ships: WSL's init starts systemd
            extra, files, kind = wsl.SYSTEMD_DOCKERFILE_ADDITIONS, {"nvidia-smi": driver,
                                                                    **wsl.SYSTEMD_FILES}, "-wsl"
        elif gpus:
            extra, files, kind = "COPY nvidia-smi /usr/bin/nvidia-smi\n", {"nvidia-smi": driver}, "-gpu"
        else:
            extra, files, kind = "", None, ""
        dockerfile = SYSTEMD_TARGET_DOCKERFILE.format(base=ensure_base(engine, systemd_suite), password=SUDO_PASSWORD,
                                                      extra=extra)
        return _built(engine, f"jupyterhub-gpu-testbed/{systemd_suite}-systemd{kind}-target", dockerfile, files)
    if wsl_host:
        return _built(engine, "jupyterhub-gpu-testbed/wsl-target", WSL_TARGET_DOCKERFILE,
                      {"nvidia-smi": driver, **wsl.FILES})
    if gpus:
        return _built(engine, "jupyterhub-gpu-testbed/gpu-target", GPU_TARGET_DOCKERFILE,
                      {"nvidia-smi": driver, "testbed-sysv-init": SYSV_INIT})
    return _built(engine, "jupyterhub-gpu-testbed/target", TARGET_DOCKERFILE, {"testbed-sysv-init": SYSV_INIT})


def ensure_singleuser_image(engine: docker.DockerClient) -> str:
    """A small single-user server image (jupyter_server, no JupyterLab) for spawner tests."""
    return _built(engine, "jupyterhub-gpu-testbed/singleuser", SINGLEUSER_DOCKERFILE,
                  {SINGLEUSER_PATCH: (IMAGE_FILES / SINGLEUSER_PATCH).read_text()})


def _built(engine: docker.DockerClient, name: str, dockerfile: str, extra: dict[str, str] | None = None) -> str:
    """Build ``dockerfile`` (with the host's CA bundle and ``extra`` files beside it) once, tagged by a
    hash of all of them."""
    ensure_base(engine)
    files = {"Dockerfile": dockerfile.encode(), "ca-certificates.crt": HOST_CA_BUNDLE.read_bytes()}
    files.update({filename: text.encode() for filename, text in (extra or {}).items()})
    tag = f"{name}:" + hashlib.sha256(b"\0".join(files.values())).hexdigest()[:12]
    with machine_lock(f"image-{name.rsplit('/', 1)[-1]}"):
        try:
            engine.images.get(tag)
        except docker.errors.ImageNotFound:
            _build(engine, tag, files)
    return tag


def _build(engine: docker.DockerClient, tag: str, files: dict[str, bytes]) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for filename, data in files.items():
            info = tarfile.TarInfo(filename)
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
