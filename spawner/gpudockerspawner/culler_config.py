# Configuration of the hub-wide culler (jupyterhub-idle-culler --config=<this file>): its own rule, with the GPU
# signals that may keep a server at work. See gpudockerspawner.culling.
from gpudockerspawner.culling import arbiter

c.IdleCuller.cull_arbiter_hook = arbiter  # noqa: F821
