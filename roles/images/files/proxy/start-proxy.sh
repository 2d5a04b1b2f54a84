#!/bin/sh
# The proxy's entry point. It starts as root only to hand the proxy its certificate, key and token (root's 0600
# files on the host), then runs configurable-http-proxy as the unprivileged user jupyterhub ($JUPYTERHUB_GPU_UID) with
# no capabilities. The proxy takes the hub's token from its environment only.
set -eu
uid=$JUPYTERHUB_GPU_UID
install -d -m 700 -o "$uid" -g "$uid" /run/proxy
install -m 600 -o "$uid" -g "$uid" /run/secrets/proxy_token /etc/jupyterhub-proxy/tls/server.crt \
  /etc/jupyterhub-proxy/tls/server.key /run/proxy/
CONFIGPROXY_AUTH_TOKEN=$(cat /run/proxy/proxy_token)
export CONFIGPROXY_AUTH_TOKEN
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all \
  /opt/proxy/node_modules/.bin/configurable-http-proxy --ssl-cert /run/proxy/server.crt --ssl-key /run/proxy/server.key "$@"
