"""Render a role's templates, with a filter for each language a value may land in, so that no value is
ever pasted in bare: ``sh`` (shlex.quote) for shell, ``tojson`` for JSON and Python."""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


@cache
def _environment(directory: Path) -> Environment:
    environment = Environment(loader=FileSystemLoader(directory), undefined=StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, autoescape=False)
    environment.filters["sh"] = lambda value: shlex.quote(str(value))
    return environment


def render(directory: Path, name: str, **values) -> str:
    return _environment(directory).get_template(name).render(**values)
