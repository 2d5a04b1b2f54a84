"""One remote GPU server, deployed from your laptop (or any machine that reaches it over SSH) as a user with sudo.

    .venv/bin/pyinfra -y inventories/gpu-server.py deploy/jupyterhub.py

Copy this file, then change the host name, the SSH user and key, and the hub's name. Before the first deploy:
- the server runs Ubuntu 22.04/24.04 or Debian 11/12/13 with the NVIDIA driver installed (`nvidia-smi` answers);
  the deploy installs Docker, the NVIDIA Container Toolkit and everything else;
- `ssh <ssh_user>@<host>` works with the key below, and that user may run any command with sudo (cloud images'
  `ubuntu` or `admin` users can); where sudo asks for a password, set `_sudo_password` (or leave it out and run
  pyinfra from a terminal: it asks once);
- ports 443 (the hub) and 80 (a redirect to it, and Let's Encrypt's HTTP-01 check) are open to your users.

The deploy's last lines say where the hub answers and where its admin password is (on the server, root only:
`sudo cat /opt/jupyterhub-gpu/secrets/admin-password-admin`). Settings: see the settings reference in docs/
(docs/tutorials/remote-server.md walks through this file).
"""

gpu_servers = [
    (
        "gpu1.example.org",
        {
            # How pyinfra reaches it: as a user with sudo, not root.
            "ssh_user": "ubuntu",
            "ssh_key": "~/.ssh/id_ed25519",
            "_sudo": True,
            # "_sudo_password": "...",  # only where sudo asks for one
            # The hub's settings: the name people type, which its certificate covers.
            "hub_names": ["gpu1.example.org"],
            # http:// redirects to https://.
            "http_port": 80,
            # With a DNS name that resolves to this server from the internet, a certificate browsers trust (then
            # take out http_port: certbot answers Let's Encrypt's HTTP-01 check on port 80):
            # "tls_mode": "letsencrypt",
            # "acme_email": "you@example.org",
        },
    )
]
