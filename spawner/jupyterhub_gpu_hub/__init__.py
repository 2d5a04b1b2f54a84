"""What runs in the hub's container besides the spawner: the contract between the deploy and the hub
(``contract``: what ``/etc/jupyterhub/hub.json`` holds), the code of the hub's configuration (``config``: the
static ``jupyterhub_config.py`` only calls it), and the tools the deploy runs in the hub's image (``archive``:
backups and restores; ``gpu_check``: ``bin/gpu-check``)."""
