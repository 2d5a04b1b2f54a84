"""Turn the inventory's hosts into JupyterHub servers that give each user a container (and a GPU).

    pyinfra -y inventories/local.py deploy/jupyterhub.py

Every host's inventory data is validated before any host is changed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinfra import host, logger  # noqa: E402

from roles import docker_engine, images, network, nvidia_toolkit, preflight, secrets, services, tls  # noqa: E402

target = preflight.check()
docker_engine.ensure_engine(target)
nvidia_toolkit.ensure_toolkit(target)
network.ensure_network(target)
built = images.ensure_images(target)
nvidia_toolkit.verify_gpus(target, target.base_tag)
hub_secrets = secrets.ensure_secrets(target)
certificate = tls.ensure_certificate(target)
services.ensure_services(target, built, certificate, hub_secrets)

if target.profile.wsl and len(target.gpu_pool) > 1:
    host.log(
        f"this is a WSL2 host with {len(target.gpu_pool)} GPUs: WSL2 shows every container every GPU, "
        "so which GPU a user holds is advisory here (see README, GPUs)",
        log_func=logger.warning,
    )

trust = f"; browsers trust it once they trust the local CA {certificate.ca}" if target.settings.tls_mode == "selfsigned" else ""
host.log(
    f"when this deploy has finished, JupyterHub answers at https://{target.names[0]}:{target.settings.https_port}/ "
    f"(admins {', '.join(target.settings.admin_users)} sign up at /hub/signup{trust})"
)
