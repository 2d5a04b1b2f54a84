"""A GPU cluster: one hub host and GPU nodes that run the users' servers, joined in a Docker Swarm.

    .venv/bin/pyinfra -y inventories/cluster.py deploy/jupyterhub.py

The `hub` host (exactly one) runs the hub and the proxy and manages the swarm; each host in `gpu_nodes` joins it
as a worker and advertises its GPUs, which Swarm then hands out to servers. Add a node to the list and deploy
again to grow. A group given as (hosts, data) gives each of its hosts that data: settings every host shares
(SSH access, the authenticator, image profiles; see the settings reference in docs/) go in `_every_host`, whose
leading underscore keeps pyinfra from reading it as a group.
"""

_every_host = {
    "ssh_user": "ubuntu",
    "ssh_key": "~/.ssh/id_ed25519",
    "_sudo": True,
}

hub = ([("hub.example.org", {"hub_names": ["hub.example.org"]})], _every_host)
gpu_nodes = (["gpu1.example.org", "gpu2.example.org"], _every_host)
