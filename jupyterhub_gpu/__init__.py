"""The deploy's own library: the model every role reads (settings, facts, target) and the helpers the roles
share (missing Debian packages, the closing lines)."""

import sys
from pathlib import Path

# The spawner's source tree, for its GPU pool module (no dependencies): the deploy reads GPU ids with the
# hub's own grammar without installing the spawner, and a hub, on the controller.
_SPAWNER = str(Path(__file__).resolve().parents[1] / "spawner")
if _SPAWNER not in sys.path:
    sys.path.append(_SPAWNER)
