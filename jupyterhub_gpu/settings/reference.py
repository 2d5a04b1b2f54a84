"""The settings reference (docs), generated from the model."""

from __future__ import annotations

from pydantic import BaseModel

from jupyterhub_gpu.settings.model import CONCERNS


def settings_table() -> str:
    """The settings reference, generated from the model: a section per concern, in CONCERNS' order, each a table
    of its settings with their defaults and help text (the docs site's reference page includes it)."""
    sections = []
    for concern in CONCERNS:
        rows = [f"## {concern.title}", "", concern.__doc__, "", "| setting | default | what it does |",
                "| --- | --- | --- |"]
        for name, field in concern.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, list) and default and isinstance(default[0], BaseModel):
                shown = "; ".join(f"`{item}`" for item in default)
            else:
                shown = "empty" if default in (None, [], {}) else f"`{default}`"
            # A | in a cell, even in a code span, ends the cell unless escaped (image_build's "docker save | zstd").
            rows.append(f"| `{name}` | {shown.replace('|', chr(92) + '|')} | "
                        f"{field.description.replace('|', chr(92) + '|')} |")
        sections.append("\n".join(rows))
    return "\n\n".join(sections) + "\n"
