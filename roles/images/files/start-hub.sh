#!/bin/sh
# The hub's entry point. It starts as root only to hand the hub what it may have, then runs it as the
# unprivileged user jupyterhub ($JUPYTERHUB_GPU_UID, the deploy's service_uid, set in the image):
#   - the Docker socket's group ($DOCKER_HOST), whatever number this host gave it, so that the hub can start
#     servers;
#   - the secrets, copied to a tmpfs that only the hub's user can read (they stay root's 0600 on the host), and a
#     directory there for what one run of the hub's services shares (the GPU figures);
#   - its database volume, which earlier versions wrote as root;
#   - its database upgraded, after a copy, when JupyterHub's version changed.
set -eu
uid=$JUPYTERHUB_GPU_UID
install -d -m 700 -o "$uid" -g "$uid" /run/jupyterhub/secrets
# Where the hub's GPU service leaves each round's GPU figures, for the hub's gauges and the cullers.
install -d -m 700 -o "$uid" -g "$uid" /run/jupyterhub/gpu
for secret in /run/secrets/*; do
  [ -f "$secret" ] && install -m 600 -o "$uid" -g "$uid" "$secret" /run/jupyterhub/secrets/
done
# Written as root by earlier versions, or as another service_uid: the hub's user owns it now.
if [ "$(stat -c %u:%g /srv/jupyterhub)" != "$uid:$uid" ]; then chown -R "$uid:$uid" /srv/jupyterhub; fi
hub_user="--reuid=$uid --regid=$uid --groups=$(stat -c %g "${DOCKER_HOST#unix://}") --inh-caps=-all"
# Another JupyterHub than the one that last ran on this database: copy the database as it was (SQLite's
# online backup, beside it on the volume), then upgrade it. User servers keep running meanwhile.
data=/srv/jupyterhub
version=$(python3 -c 'import jupyterhub; print(jupyterhub.__version__)')
last=$(cat "$data/jupyterhub-version" 2>/dev/null || echo unknown)
if [ -s "$data/jupyterhub.sqlite" ] && [ "$last" != "$version" ]; then
  copy="$data/jupyterhub.sqlite.$last-to-$version.$(date -u +%Y%m%dT%H%M%SZ)"
  setpriv $hub_user python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
    "$data/jupyterhub.sqlite" "$copy"
  echo "JupyterHub $last -> $version: the database was copied to $copy; upgrading it" >&2
  setpriv $hub_user jupyterhub upgrade-db --config /etc/jupyterhub/jupyterhub_config.py
fi
echo "$version" > "$data/jupyterhub-version" && chown "$uid:$uid" "$data/jupyterhub-version"
# shellcheck disable=SC2086 # $hub_user is several options, without spaces in them
exec setpriv $hub_user "$@"
