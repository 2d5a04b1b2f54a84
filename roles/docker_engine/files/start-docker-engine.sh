#!/bin/sh
# Start the Docker engine where no systemd does (WSL without systemd, containers), and wait until it
# answers: the package's init script, or dockerd itself where that script cannot raise its limits (a host
# without CAP_SYS_RESOURCE, such as a container). Written by the jupyterhub-gpu deploy; run by it, and at
# boot where the deploy arranged that (WSL's [boot] command).
timeout=${1:-60}
docker info >/dev/null 2>&1 && exit 0
# The firewall first, as it was last applied: the engine restarts the user containers as it starts.
if [ -x /usr/local/sbin/jupyterhub-gpu-firewall ]; then /usr/local/sbin/jupyterhub-gpu-firewall --boot; fi
if ! /etc/init.d/docker start >/dev/null 2>&1; then
  echo "the init script could not start the Docker engine; starting dockerd directly" >&2
  setsid dockerd >>/var/log/docker.log 2>&1 </dev/null &
fi
i=0
while [ "$i" -lt "$timeout" ]; do
  if docker info >/dev/null 2>&1; then
    # And as the engine names the network now, once the deploy has written it.
    if [ -x /usr/local/sbin/jupyterhub-gpu-firewall ]; then /usr/local/sbin/jupyterhub-gpu-firewall; fi
    exit 0
  fi
  sleep 1
  i=$((i + 1))
done
echo "the Docker engine did not answer within ${timeout}s; see /var/log/docker.log" >&2
exit 1
