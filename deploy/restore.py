"""Restore a backup archive onto the inventory's host and deploy the hub there, as a fresh host needs.

    bin/restore inventories/local.py backups/<host>-<time>.tar
    (JUPYTERHUB_GPU_ARCHIVE=<archive> pyinfra -y inventories/local.py deploy/restore.py)

The archive is checked on the controller first (every sha256, its JupyterHub version against this
checkout's, its compose project); a bad one changes nothing. What a non-fresh host held before is archived
on the host first. An archive is restored once: running this again changes nothing, so it cannot
overwrite what users made since. Restore onto one host at a time (pyinfra's --limit).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinfra import host, state  # noqa: E402

from jupyterhub_gpu.summary import Summary, say_where_the_hub_is, warn_if_insecure  # noqa: E402
from roles import preflight, provision, restore  # noqa: E402

target = preflight.check()
given = os.environ.get("JUPYTERHUB_GPU_ARCHIVE")
if not given:
    raise restore.RestoreError("say which archive to restore: JUPYTERHUB_GPU_ARCHIVE=<file> (bin/restore does)")
archive = restore.check_archive(Path(given).resolve(), target)
summary = Summary.for_host(state, host)
warn_if_insecure(summary, target)
say_where_the_hub_is(summary, target, provision(target, restore_from=archive))
summary.say(f"restored from {archive.path.name}: {archive.manifest['source']}'s hub of {archive.manifest['created']}, "
            f"{len(archive.manifest['volumes'])} home volumes")
