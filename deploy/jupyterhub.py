"""Turn the inventory's hosts into JupyterHub servers that give each user a container (and a GPU).

    pyinfra -y inventories/local.py deploy/jupyterhub.py

Every host's inventory data is validated before any host is changed. The last lines of the output say,
for each host, where the hub answers and where its admin passwords and local CA are.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinfra import host, logger, state  # noqa: E402

from roles import preflight, provision  # noqa: E402
from jupyterhub_gpu.summary import Summary  # noqa: E402

target = preflight.check()
summary = Summary.for_host(state, host)
if target.settings.insecure_test_mode and target.settings.authenticator in ("shared-password", "dummy"):
    insecure = (f"INSECURE TEST MODE: authenticator {target.settings.authenticator} lets in anyone who knows one "
                "password; never let people use this hub")
    host.log(insecure, log_func=logger.warning)
    summary.warn(insecure)
provisioned = provision(target)

if target.profile.wsl and len(target.gpu_pool) > 1:
    summary.warn(f"this is a WSL2 host with {len(target.gpu_pool)} GPUs: WSL2 shows every container every GPU, "
                 "so which GPU a user holds is advisory here (see README, GPUs)")
summary.say(f"JupyterHub answers at {target.hub_url}")
if provisioned.certificate.ca:
    summary.say(f"browsers trust it once they import the local CA {provisioned.certificate.ca}")
if target.gpu_pool:
    pool = [gpu for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool]
    summary.say(f"it hands out {len(pool)} GPU{'s' if len(pool) > 1 else ''}, {target.settings.gpus_per_user} per "
                "server: " + "; ".join(f"{gpu.index} {gpu.name} {gpu.memory_mib // 1024} GiB ({gpu.uuid})"
                                       for gpu in pool))
else:
    summary.say("it has no GPU to hand out: every server is CPU-only")
for admin, path in provisioned.secrets.admin_passwords.items():
    summary.say(f"admin {admin} logs in with the password in {path} (root only)")
if target.settings.authenticator == "native":
    summary.say("new users sign up at /hub/signup; admins approve them at /hub/authorize")
for line in provisioned.uptime.said:
    summary.say(line)
