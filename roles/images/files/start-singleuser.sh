#!/bin/sh
# Entry point of the built single-user image. The container starts as root only to decide about sudo and,
# in a cluster, to fence the server in; the server itself runs as jovyan. GRANT_SUDO=yes, which the hub sets
# for members of sudo_groups, lets jovyan use sudo without a password, as in the Jupyter Docker Stacks images;
# without it jovyan cannot, and the server runs with no-new-privileges (no setuid program can raise anything,
# also where the engine's own flag cannot be set: Swarm services). root has no password: nobody can become
# root any other way.
set -eu
# On a Swarm GPU node, Swarm names the task's GPUs or MIG devices in DOCKER_RESOURCE_NVIDIA-<KIND> (comma-separated
# UUIDs; one variable per kind the task asked for); NVIDIA's runtime reads them through swarm-resource. CUDA is
# told the same, so that a runtime that shows more GPUs than Swarm gave (reported of some toolkit versions) still
# has CUDA use only the task's own. (A shell drops a variable whose name has a '-' from what it passes on, so they
# are read from what this process was started with.)
swarm_gpus=$(tr '\0' '\n' < /proc/$$/environ | sed -n 's/^DOCKER_RESOURCE_NVIDIA-[A-Z0-9-]*=//p' | paste -sd, -)
if [ -n "$swarm_gpus" ]; then
  export CUDA_VISIBLE_DEVICES="$swarm_gpus"
fi

# JUPYTERHUB_GPU_FENCE (the shared network's subnets, space-separated) and JUPYTERHUB_GPU_FENCE_PORT (the hub's
# API port), set by the hub in a cluster, where no host firewall sees the traffic between containers on the
# overlay network: this container may open connections on that network only to the hub's API port (which no
# user container can listen on, being below 1024), and none to the cloud metadata address. The rules live in
# the container's own network namespace; the capability to change them (NET_ADMIN) leaves with this script.
fence() {
  ports=$JUPYTERHUB_GPU_FENCE_PORT
  [ -n "$ports" ] || { echo "fence: no port of the hub given" >&2; return 1; }
  for port in $ports; do
    case "$port" in *[!0-9]*) echo "fence: the hub's port '$port' is not a number" >&2; return 1 ;; esac
  done
  {
    echo "*filter"
    echo "-A OUTPUT -o lo -j ACCEPT"
    echo "-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A OUTPUT -d 169.254.169.254/32 -j DROP"
    for subnet in $JUPYTERHUB_GPU_FENCE; do
      case "$subnet" in
        *[!0-9./]*|"") echo "fence: '$subnet' is not an IPv4 subnet" >&2; return 1 ;;
      esac
      for port in $ports; do
        echo "-A OUTPUT -d $subnet -p tcp -m tcp --dport $port -j ACCEPT"
      done
      echo "-A OUTPUT -d $subnet -j DROP"
    done
    echo "COMMIT"
  } | iptables-restore --noflush
}

if [ "$(id -u)" = 0 ]; then
  keep_out=
  if [ -n "${JUPYTERHUB_GPU_FENCE:-}" ]; then
    if ! fence; then
      # Never a server without its fence: the spawn fails, and the hub's log says why.
      echo "start-singleuser: cannot fence this server in on the shared network; not starting it" >&2
      exit 1
    fi
    # NET_ADMIN (given for the fence, with SETPCAP to drop it) leaves the bounding set: not even root by sudo
    # gets it back.
    keep_out=--bounding-set=-net_admin
  fi
  unset JUPYTERHUB_GPU_FENCE JUPYTERHUB_GPU_FENCE_PORT
  no_new_privs=--no-new-privs
  if [ "${GRANT_SUDO:-no}" = yes ]; then
    printf 'jovyan ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/jovyan
    chmod 440 /etc/sudoers.d/jovyan
    no_new_privs=
  else
    rm -f /etc/sudoers.d/jovyan
  fi
  export HOME=/home/jovyan USER=jovyan LOGNAME=jovyan
  # shellcheck disable=SC2086 # each is one option or none
  exec setpriv --reuid=1000 --regid=1000 --init-groups $keep_out $no_new_privs "$@"
fi
exec "$@"
