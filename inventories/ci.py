"""Throwaway targets for CI smoke deploys, listed in the JSON file named by $JUPYTERHUB_GPU_TARGETS.

Each entry: {"name": "<address>", "ssh_key": "<path>", "data": {<settings>}, "groups": [...]}; a cluster's
entries name their group, "hub" or "gpu_nodes" (see inventories/cluster.py). ``bin/ci-smoke`` starts such
targets, writes the file, deploys twice and checks each hub.
"""

import json
import os

_entries = json.loads(open(os.environ["JUPYTERHUB_GPU_TARGETS"]).read())

targets = [
    (
        entry["name"],
        {
            "ssh_user": "root",
            "ssh_key": entry["ssh_key"],
            # Throwaway hosts get new host keys every run.
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            **entry.get("data", {}),
        },
    )
    for entry in _entries
]

# A cluster's groups (by host name; the data is the entry's, above).
hub = [entry["name"] for entry in _entries if "hub" in entry.get("groups", ())]
gpu_nodes = [entry["name"] for entry in _entries if "gpu_nodes" in entry.get("groups", ())]
