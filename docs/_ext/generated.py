"""Reference pages made from the code at each build: the settings (from the settings model) and the bin/
commands (from each command's own ``--help``), written into the part of each page between the markers below, so
that a setting or a command the code gains appears without anyone writing it. The pages are kept in git as they are
made, so that they read whole where people read the repository itself (a test fails where one differs from what
the code makes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
BEGIN = "<!-- Generated from the code at each build (docs/_ext/generated.py): edit the code, not this part. -->"
END = "<!-- End of the generated part. -->"


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


def pages() -> dict[Path, object]:
    """Each generated page, with what makes its generated part."""
    from jupyterhub_gpu.settings import settings_table

    return {REFERENCE / "settings.md": settings_table, REFERENCE / "commands.md": command_reference}


def with_generated(page: str, generated: str) -> str:
    """``page`` with ``generated`` between its markers."""
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{generated.strip()}\n\n{END}{tail}"


def generate(app) -> None:
    for path, make in pages().items():
        write_if_changed(path, with_generated(path.read_text(), make()))


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
