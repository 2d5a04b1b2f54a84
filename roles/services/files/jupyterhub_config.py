"""JupyterHub's configuration on a jupyterhub-gpu host: the same file on every host, applied to data.

The deploy writes its validated settings to ``/etc/jupyterhub/hub.json`` (declared in
``jupyterhub_gpu_hub.contract``) and the secrets to files under ``/run/secrets``; the code that turns them into
configuration is ``jupyterhub_gpu_hub.config``, in the hub's image. Nothing here is generated, so no setting can
become code.
"""

import os

from jupyterhub_gpu_hub import config, contract

SETTINGS_FILE = os.environ.get("JUPYTERHUB_GPU_SETTINGS", "/etc/jupyterhub/hub.json")

config.apply(get_config(), contract.read(SETTINGS_FILE))  # noqa: F821 (JupyterHub's loader defines get_config)
