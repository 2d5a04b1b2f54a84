"""A JupyterHub DockerSpawner that hands each user container GPUs from a pool."""

from gpudockerspawner.pool import GPUPool, PoolError, parse_gpu_ids

__all__ = ["GPUDockerSpawner", "GPUPool", "PoolError", "parse_gpu_ids"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The spawner needs JupyterHub and DockerSpawner; the pool and its id grammar need nothing, and a
    # deploy that only reads GPU ids imports them without pulling in a hub.
    if name == "GPUDockerSpawner":
        from gpudockerspawner.spawner import GPUDockerSpawner

        return GPUDockerSpawner
    raise AttributeError(f"module 'gpudockerspawner' has no attribute {name!r}")
