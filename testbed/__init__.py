"""The project's test bed: a Docker engine, images, throwaway targets, a deploy runner, hub clients."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Keys, CA copies and target lists of test runs; ignored by git.
STATE = REPO / ".testbed"
