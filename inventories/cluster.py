"""A GPU cluster: one hub host and GPU nodes that run the users' servers, joined in a Docker Swarm.

    pyinfra -y inventories/cluster.py deploy/jupyterhub.py

The `hub` host (exactly one) runs the hub and the proxy and manages the swarm; each host in `gpu_nodes` joins it
as a worker and advertises its GPUs, which Swarm then hands out to servers. Add a node to the list and deploy
again to grow; settings shared by every host (see README.md) go in the `all` data below or in group_data/.
"""

hub = [
    ("hub.example.org", {"hub_names": ["hub.example.org"]}),
]
gpu_nodes = [
    "gpu1.example.org",
    "gpu2.example.org",
]
