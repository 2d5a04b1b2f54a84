"""The deploy runs from the controller's own environment (requirements.txt and the spawner package without its
dependencies): nothing the roles import may need the hub's packages (tornado, traitlets, docker-py, JupyterHub)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HUB_ONLY = ("tornado", "traitlets", "docker", "jupyterhub", "dockerspawner", "prometheus_client")

# Each of the hub's packages made unimportable, as in an environment that lacks it; then every module of the deploy.
CODE = f"""
import importlib, pkgutil, sys
for name in {HUB_ONLY!r}:
    sys.modules[name] = None
import jupyterhub_gpu, roles
for package in (jupyterhub_gpu, roles):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
"""


def test_every_module_of_the_deploy_imports_without_the_hubs_packages():
    checked = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr[-3000:]
