"""What runs in the hub's container besides the spawner: the contract between the deploy and the hub
(``contract``: what ``/etc/jupyterhub/hub.json`` holds), the code of the hub's configuration (``config``: the
static ``jupyterhub_config.py`` only calls it), and the tools the deploy runs in the hub's image (``archive``:
backups and restores; ``gpu_check``: ``bin/gpu-check``)."""

from pathlib import Path

# Where the tools' files are, for the deploy that copies them to a host: found without importing them (the deploy's
# own environment has none of the hub's packages, like docker-py, that they import).
PACKAGE_DIR = Path(__file__).parent
