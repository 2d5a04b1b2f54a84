"""Reference pages made from the code at each build: the settings (from the settings model) and the bin/
commands (from each command's own ``--help``). They are written to ``docs/_generated/`` (not kept in git) and
included by the reference pages, so a setting or a command the code gains appears without anyone writing it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "docs" / "_generated"


def commands() -> list[Path]:
    """Every command in bin/, in name order."""
    return sorted(path for path in (ROOT / "bin").iterdir() if path.is_file())


def command_reference() -> str:
    sections = []
    for command in commands():
        result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=30, cwd=ROOT)
        if result.returncode != 0 or not result.stdout.startswith(f"usage: bin/{command.name}"):
            raise RuntimeError(f"bin/{command.name} --help: exit {result.returncode}: {result.stdout}{result.stderr}")
        sections.append(f"## `bin/{command.name}`\n\n```text\n{result.stdout.rstrip()}\n```\n")
    return "\n".join(sections)


def write_if_changed(path: Path, text: str) -> None:
    """Unchanged content keeps its file's time, so that Sphinx reads again only what changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app) -> None:
    from jupyterhub_gpu.settings import settings_table

    GENERATED.mkdir(exist_ok=True)
    write_if_changed(GENERATED / "settings.md", settings_table())
    write_if_changed(GENERATED / "commands.md", command_reference())


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
