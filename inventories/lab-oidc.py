"""A research lab: a hub host and three GPU nodes in a Docker Swarm, logging in with the lab's OpenID Connect provider
(Keycloak, say), GPUs shared by group rules.

    .venv/bin/pyinfra -y inventories/lab-oidc.py deploy/jupyterhub.py

Copy this file and change the names. The provider's groups claim decides who may log in (`physics`, `chemistry`) and,
as hub groups of the same names, who gets how many GPUs: the OIDC login keeps each person's hub groups as the
provider says them. The client secret is read from the controller's environment when you deploy
(`OIDC_CLIENT_SECRET=... .venv/bin/pyinfra ...`) and kept on the hub host only, mode 0600. Every host reaches the
others (docs/explanation/gpu-pool.md says which ports); people's homes are on each server's node unless
`home_volume_driver` names shared storage. The settings reference in docs/ explains each setting.
"""

_every_host = {
    "ssh_user": "ubuntu",
    "ssh_key": "~/.ssh/id_ed25519",
    "_sudo": True,
    # The hub's name: its certificate's, and the address registered with the provider (.../hub/oauth_callback).
    "hub_names": ["hub.lab.example.org"],
    "authenticator": "oauth",
    "oauth_provider": "generic",
    "oauth_issuer_url": "https://id.lab.example.org/realms/lab",
    "oauth_client_id": "jupyterhub",
    "oauth_client_secret_env": "OIDC_CLIENT_SECRET",
    "allowed_groups": ["physics", "chemistry"],
    "admin_users": ["it-admin"],
    # Physics has two GPUs a person and eight at most together; chemistry one each and 100 GPU-hours a month together.
    "gpu_groups": {
        "physics": {"gpus_per_user": 2, "max_gpus": 8},
        "chemistry": {"gpus_per_user": 1, "gpu_hours_together": 100, "budget_period": "month"},
    },
    "gpu_idle_timeout": 1800,
    "gpu_idle_utilization": 5,
    "gpu_busy_is_activity": True,
    "gpu_max_age": 3 * 86400,
}

hub = ([("hub.lab.example.org", {"tls_mode": "letsencrypt", "acme_email": "it@lab.example.org"})], _every_host)
gpu_nodes = (["gpu1.lab.example.org", "gpu2.lab.example.org", "gpu3.lab.example.org"], _every_host)
