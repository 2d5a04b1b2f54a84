"""Back up each host's hub onto the controller: one archive per host, with a manifest of what it holds.

    bin/backup inventories/local.py          (pyinfra -y inventories/local.py deploy/backup.py)

Archives go to ./backups/ beside this checkout, or to $JUPYTERHUB_GPU_BACKUPS. The hub keeps running; the
database is copied with SQLite's online backup. Restore with bin/restore (deploy/restore.py).
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyinfra import host, state  # noqa: E402

from jupyterhub_gpu.summary import Summary  # noqa: E402
from roles import backup, preflight  # noqa: E402

target = preflight.check()
destination = Path(os.environ.get("JUPYTERHUB_GPU_BACKUPS") or REPO / "backups").resolve()
if target.runs_hub:
    archive = backup.ensure_backup(target, destination)
    Summary.for_host(state, host).say(f"backed up into {archive}; restore with bin/restore <inventory> {archive}")
else:
    # The archive tool runs in the hub's image, which a GPU node does not have.
    Summary.for_host(state, host).warn(
        f"a GPU node of the swarm: not backed up; its users' homes are the volumes {target.settings.compose_project}"
        "-user-* here (see docs/how-to/backup-restore.md)")
