"""The house style, checked where a reviewer would otherwise: ruff with the repository's ruff.toml (pyflakes,
pycodestyle with lines of at most 120 characters, import order, pyupgrade, bugbear)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_follows_the_committed_lint_configuration():
    checked = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
