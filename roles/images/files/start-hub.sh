#!/bin/sh
# The hub's entry point. It starts as root only to hand the hub what it may have, then runs it as the
# unprivileged user jupyterhub (uid 990):
#   - the Docker socket's group, whatever number this host gave it, so that the hub can start servers;
#   - the secrets, copied to a tmpfs that only the hub's user can read (they stay root's 0600 on the host);
#   - its database volume, which earlier versions wrote as root.
set -eu
install -d -m 700 -o 990 -g 990 /run/jupyterhub/secrets
for secret in /run/secrets/*; do
  [ -f "$secret" ] && install -m 600 -o 990 -g 990 "$secret" /run/jupyterhub/secrets/
done
if [ "$(stat -c %u /srv/jupyterhub)" != 990 ]; then chown -R 990:990 /srv/jupyterhub; fi
exec setpriv --reuid=990 --regid=990 --groups="$(stat -c %g /var/run/docker.sock)" --inh-caps=-all "$@"
