# Configuration of the GPU culler (jupyterhub-idle-culler --config=<this file>): it stops only servers that
# hold a GPU. See gpudockerspawner.culling.
from gpudockerspawner.culling import gpu_arbiter

c.IdleCuller.cull_arbiter_hook = gpu_arbiter  # noqa: F821
