"""A JupyterHub DockerSpawner that hands each user container GPUs from a pool."""

from gpudockerspawner.pool import GPUPool, PoolError, parse_gpu_ids
from gpudockerspawner.spawner import GPUDockerSpawner

__all__ = ["GPUDockerSpawner", "GPUPool", "PoolError", "parse_gpu_ids"]
__version__ = "0.1.0"
