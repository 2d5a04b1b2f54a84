"""A class of 30 on one server with 4 GPUs, logging in with the university's LDAP directory.

    .venv/bin/pyinfra -y inventories/class-ldap.py deploy/jupyterhub.py

Copy this file and change the names. What it sets up: students of the course's LDAP group log in with their
university password; each may hold one GPU, 6 GPU-hours a week, and waits in line for the next free one when all
four are taken; staff have two each and no budget; a GPU left idle for 20 minutes goes back to the pool, with
JupyterLab's warnings 15 and 5 minutes before; a certificate from Let's Encrypt (the name must resolve to this server
from the internet, and port 80 reach it). Put people into the hub's groups `students` and `staff` on the admin page
(docs/how-to/users-and-groups.md). The settings reference in docs/ explains each setting.
"""

class_server = [
    (
        "gpu1.example.edu",
        {
            "ssh_user": "ubuntu",
            "ssh_key": "~/.ssh/id_ed25519",
            "_sudo": True,
            "hub_names": ["jupyter.example.edu"],
            "tls_mode": "letsencrypt",
            "acme_email": "it-support@example.edu",
            # Logins: the directory over ldaps, members of the course's group only.
            "authenticator": "ldap",
            "ldap_server_address": "ldap.example.edu",
            "ldap_bind_dn_template": ["uid={username},ou=people,dc=example,dc=edu"],
            "allowed_groups": ["cn=ml-101,ou=courses,dc=example,dc=edu"],
            "admin_users": ["lecturer"],
            # Sharing four GPUs among 30: one each for students, with a weekly budget; a line when all are held.
            "gpu_groups": {
                "students": {"gpus_per_user": 1, "gpu_hours": 6, "budget_period": "week"},
                "staff": {"gpus_per_user": 2},
            },
            "gpu_on_exhausted": "wait",
            "budget_timezone": "Europe/Berlin",
            # A class logging in at once: a few servers start at a time, the rest in line.
            "spawns_at_once": 4,
            # Idle GPUs back to the pool, and everyone's idle server stopped after two hours.
            "gpu_idle_timeout": 1200,
            "gpu_idle_utilization": 5,
            "idle_timeout": 7200,
            "cull_warnings": [15, 5],
        },
    )
]
