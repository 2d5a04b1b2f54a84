#!/bin/sh
# Run by WSL as root when this distribution starts (the [boot] command in /etc/wsl.conf): what systemd starts
# on other hosts. In the background, so that the distribution's start does not wait for the engine.
# Written by the jupyterhub-gpu deploy.
(
  /usr/local/sbin/jupyterhub-gpu-start-docker 120
  # Certificate renewals run from cron where there is no systemd.
  if [ -x /etc/init.d/cron ]; then /etc/init.d/cron start; fi
) >>/var/log/jupyterhub-gpu-boot.log 2>&1 </dev/null &
