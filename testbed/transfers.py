"""A watcher on a target for files that others could read while a deploy or a backup runs: what an account on the
GPU host other than root and the SSH user would see of the secrets and archives that cross the connection.

inotifywait (inotify-tools, in the systemd targets' image) watches the places any account may write to or pass
through (/tmp, /var/tmp, /dev/shm, /home, /root), from before the run until after it. The kernel queues every
event, so none is missed however short a file lives. For each file written, moved in or given new modes there,
the watcher notes its name and whether another account could read it then (readable by others, and every
directory above it passable by others), and keeps a copy of each such file's content while it is still there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from testbed.wait import until

WATCHED = ("/tmp", "/var/tmp", "/dev/shm", "/home", "/root")
OUT = "/var/lib/testbed-transfer-watch"
SCRIPT = r"""
out={out}
rm -rf "$out" && mkdir -p "$out/copies" && : > "$out/events"
# Whether others may read the file: its own r bit for others, and the x bit for others on each directory above it.
exposed() {{
  [ $(( 0$(stat -c %a "$1" 2>/dev/null || echo 0) & 4 )) -ne 0 ] || return 1
  d=$(dirname "$1")
  while [ "$d" != / ]; do
    [ $(( 0$(stat -c %a "$d" 2>/dev/null || echo 0) & 1 )) -ne 0 ] || return 1
    d=$(dirname "$d")
  done
}}
n=0
inotifywait -q -m -r -e close_write -e moved_to -e attrib -e create --format '%e|%w%f' {watched} 2>"$out/errors" |
while IFS='|' read -r events path; do
  [ -f "$path" ] || {{ echo "gone|$events|$path" >> "$out/events"; continue; }}
  if exposed "$path"; then
    n=$((n + 1))
    cp "$path" "$out/copies/$n" 2>/dev/null && echo "exposed|$n|$path" >> "$out/events"
  else
    echo "private|$events|$path" >> "$out/events"
  fi
done
"""


def pyinfra_staging(path: str, temp_dir: str = "/tmp") -> str:
    """Where pyinfra's own transfers under sudo stage the file bound for ``path`` (``Host.get_temp_filename``):
    readable there by every account while it crosses."""
    return f"{temp_dir}/pyinfra-{hashlib.sha1(path.encode()).hexdigest()}"


@dataclass
class Seen:
    """What the watcher saw: each event's kind ("exposed", "private", "gone"), and the exposed files' contents."""

    events: list[tuple[str, str, str]]
    copies: dict[str, bytes]

    def paths(self) -> set[str]:
        return {path for _, _, path in self.events}

    def exposed_holding(self, secret: bytes) -> list[str]:
        """The paths of the exposed files whose content held ``secret``."""
        return [path for kind, number, path in self.events if kind == "exposed" and secret in self.copies[number]]


class TransferWatch:
    """Started on ``target`` before the run it watches (``start``), ended after it (``seen``)."""

    def __init__(self, deployment, target):
        self.deployment, self.target = deployment, target

    def start(self) -> None:
        script = SCRIPT.format(out=OUT, watched=" ".join(WATCHED))
        self.deployment.run(self.target, f"cat > /usr/local/bin/testbed-transfer-watch <<'WATCH'\n{script}\nWATCH\n"
                                         "chmod 755 /usr/local/bin/testbed-transfer-watch")
        container = self.deployment.engine.containers.get(self.target.container_id)
        container.exec_run(["sh", "-c", "exec setsid /usr/local/bin/testbed-transfer-watch"], detach=True)
        # Watching once inotifywait has set up its watches (it says nothing when -q; its process is the sign).
        until(lambda: self.deployment.output(self.target, "pgrep -x inotifywait || true"), 30,
              f"{self.target.name}: the transfer watcher's inotifywait")

    def seen(self) -> Seen:
        """Ends the watcher and reads what it saw."""
        self.deployment.run(self.target, "pkill -x inotifywait || true; sleep 1")
        events = []
        for line in self.deployment.read(self.target, f"{OUT}/events").decode(errors="replace").splitlines():
            kind, detail, path = line.split("|", 2)
            events.append((kind, detail, path))
        copies = {number: self.deployment.read(self.target, f"{OUT}/copies/{number}")
                  for kind, number, _ in events if kind == "exposed"}
        return Seen(events, copies)

    def left_behind(self) -> str:
        """Staging files or directories of pyinfra's or the deploy's still there after the run."""
        return self.deployment.output(
            self.target, f"find {' '.join(WATCHED)} \\( -name 'pyinfra-*' -o -name 'jupyterhub-gpu-transfer.*' \\) "
                         "-print 2>/dev/null")
