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

from tests.testbed.nvidia import HOOK_NAME, STUB

BASE = "jupyterhub-gpu-testbed/debian:bookworm"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

STUB_SHELL = STUB.replace("\n", "\\n")
TARGET_DOCKERFILE = f"""FROM {BASE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      openssh-server iproute2 procps ca-certificates \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && ssh-keygen -A
# Like a workstation behind a TLS-inspecting proxy: the host trusts the proxy's CA.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Like a host with NVIDIA's container toolkit: the engine the deploy starts runs GPU device requests.
RUN printf '{STUB_SHELL}' > /usr/local/bin/{HOOK_NAME} && chmod 755 /usr/local/bin/{HOOK_NAME}
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D", "-e"]
"""


def ensure_base(engine: docker.DockerClient) -> str:
    """Debian 12 minbase from the mirror, imported as BASE (about 25 s, once per machine)."""
    try:
        engine.images.get(BASE)
        return BASE
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="jupyterhub-gpu-testbed-rootfs-", dir="/var/tmp") as root:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", BASE], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrapped root failed")
    return BASE


SINGLEUSER_DOCKERFILE = f"""FROM {BASE}
COPY ca-certificates.crt /etc/ssl/testbed-ca.pem
ENV PIP_CERT=/etc/ssl/testbed-ca.pem PATH=/opt/venv/bin:$PATH
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \\
 && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /opt/venv \\
 && pip install --no-cache-dir jupyterhub==6.1.1 jupyter_server==2.21.1 \\
 && useradd --create-home --uid 1000 jovyan
USER jovyan
WORKDIR /home/jovyan
CMD ["jupyterhub-singleuser"]
"""


def ensure_target_image(engine: docker.DockerClient) -> str:
    """A fresh Debian 12 host with sshd."""
    return _built(engine, "jupyterhub-gpu-testbed/target", TARGET_DOCKERFILE)


def ensure_singleuser_image(engine: docker.DockerClient) -> str:
    """A small single-user server image (jupyter_server, no JupyterLab) for spawner tests."""
    return _built(engine, "jupyterhub-gpu-testbed/singleuser", SINGLEUSER_DOCKERFILE)


def _built(engine: docker.DockerClient, name: str, dockerfile: str) -> str:
    """Build ``dockerfile`` (with the host's CA bundle beside it) once, tagged by a hash of both."""
    ensure_base(engine)
    bundle = HOST_CA_BUNDLE.read_bytes()
    tag = f"{name}:" + hashlib.sha256(dockerfile.encode() + bundle).hexdigest()[:12]
    try:
        engine.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for filename, data in (("Dockerfile", dockerfile.encode()), ("ca-certificates.crt", bundle)):
            info = tarfile.TarInfo(filename)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag
