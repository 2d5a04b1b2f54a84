"""jupyterhub-gpu-lab: the GPU a JupyterHub GPU server holds, shown in its JupyterLab.

Two parts, one package: the JupyterLab extension (``src/``, prebuilt into ``labextension/``) draws the status bar item,
the panel and the notifications; this server extension answers it at ``<server>/jupyterhub-gpu/view`` with this
server's own view, which it asks of the hub's GPU service (``$JUPYTERHUB_GPU_VIEW_URL``, its ``api/me``) with this
server's own API token. The browser never asks the hub; the hub is asked at most once per sampling interval however
many JupyterLab tabs are open, and not at all while none is.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict]:
    return [{"src": "labextension", "dest": "jupyterhub-gpu-lab"}]


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "jupyterhub_gpu_lab"}]


def _load_jupyter_server_extension(server_app) -> None:
    from jupyterhub_gpu_lab.view import setup_handlers

    setup_handlers(server_app)
