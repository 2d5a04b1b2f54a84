"""Edit one key of an INI file's text (/etc/wsl.conf, .wslconfig) and keep everything else as it was:
other sections, other keys, comments, order."""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


class IniError(ValueError):
    pass


def value(text: str, section: str, key: str) -> str | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise IniError(str(error).splitlines()[0]) from None
    return parser.get(section, key, fallback=None)


def with_value(text: str, section: str, key: str, new: Callable[[str | None], str]) -> str:
    """``text`` with ``key = new(old value)`` in ``[section]``; unchanged where that is the value already."""
    old = value(text, section, key)
    wanted = new(old)
    if old == wanted:
        return text
    entry = f"{key} = {wanted}"
    key_line = re.compile(rf"^\s*{re.escape(key)}\s*[=:]", flags=re.IGNORECASE)
    lines = text.splitlines()
    current = header = last = found = None
    for index, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            current = match.group(1).strip()
            header = index if current == section and header is None else header
        elif current == section:
            last = index if line.strip() else last
            found = index if key_line.match(line) else found
    if found is not None:
        lines[found] = entry
    elif header is not None:
        lines.insert((last if last is not None else header) + 1, entry)
    else:
        lines += ([""] if lines and lines[-1].strip() else []) + [f"[{section}]", entry]
    return "\n".join(lines) + "\n"


def quoted_like(old: str | None, text: str) -> str:
    """``text`` in double quotes where the old value was quoted (WSL reads both)."""
    return f'"{text}"' if old and old.startswith('"') and old.endswith('"') else text


def unquoted(old: str) -> str:
    return old[1:-1] if len(old) >= 2 and old[0] == old[-1] == '"' else old
