#!/bin/sh
# Entry point of the built single-user image. The container starts as root only to decide about sudo;
# the server itself runs as jovyan. GRANT_SUDO=yes, which the hub sets for members of sudo_groups, lets
# jovyan use sudo without a password, as in the Jupyter Docker Stacks images; without it jovyan cannot.
# root has no password: nobody can become root any other way.
set -eu
# On a Swarm GPU node, Swarm names the task's GPUs in DOCKER_RESOURCE_NVIDIA-GPU (comma-separated UUIDs); NVIDIA's
# runtime reads it through swarm-resource. CUDA is told the same, so that a runtime that shows more GPUs than
# Swarm gave (reported of some toolkit versions) still has CUDA use only the task's own. (A shell drops a variable
# whose name has a '-' from what it passes on, so it is read from what this process was started with.)
swarm_gpus=$(tr '\0' '\n' < /proc/$$/environ | sed -n 's/^DOCKER_RESOURCE_NVIDIA-GPU=//p')
if [ -n "$swarm_gpus" ]; then
  export CUDA_VISIBLE_DEVICES="$swarm_gpus"
fi
if [ "$(id -u)" = 0 ]; then
  if [ "${GRANT_SUDO:-no}" = yes ]; then
    printf 'jovyan ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/jovyan
    chmod 440 /etc/sudoers.d/jovyan
  else
    rm -f /etc/sudoers.d/jovyan
  fi
  export HOME=/home/jovyan USER=jovyan LOGNAME=jovyan
  exec setpriv --reuid=1000 --regid=1000 --init-groups "$@"
fi
exec "$@"
