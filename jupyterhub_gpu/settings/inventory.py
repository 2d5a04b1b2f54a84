"""From pyinfra host data to settings, or one error that names every bad key, its value and what is allowed."""

from __future__ import annotations

import difflib

from pydantic import ValidationError
from pyinfra.api.exceptions import PyinfraError

from jupyterhub_gpu.settings.model import HubSettings
from jupyterhub_gpu.settings.profiles import ImageProfile
from jupyterhub_gpu.settings.types import PYINFRA_KEY_PREFIXES


class InventoryError(PyinfraError, ValueError):
    """Inventory data that cannot be deployed; raised before any change. A pyinfra error, so that pyinfra's
    command line prints the message alone, with no traceback before it."""

    @classmethod
    def for_host(cls, host_name: str, *problems: str) -> InventoryError:
        """The refusal for ``host_name``, one problem (key, value, what is allowed) a line."""
        return cls(f"invalid inventory data for host {host_name} (nothing was changed):\n"
                   + "\n".join(f"  {problem}" for problem in problems))


def _is_own_key(key: str) -> bool:
    return not key.startswith(PYINFRA_KEY_PREFIXES)


# Settings whose values are made of models of their own: an unknown key there is one of theirs.
NESTED_MODELS = {"image_profiles": ImageProfile}


def from_host_data(host_name: str, data: dict) -> HubSettings:
    """Validate one host's inventory data; the error names each bad key, its value and what is allowed."""
    own = {key: value for key, value in data.items() if _is_own_key(key)}
    try:
        return HubSettings(**own)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"]) or "?"
            top = str(item["loc"][0]) if item["loc"] else key
            if item["type"] == "extra_forbidden":
                nested = NESTED_MODELS.get(top) if len(item["loc"]) > 1 else None
                known = nested.model_fields if nested else HubSettings.model_fields
                close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
                hint = (f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(known)}" if nested
                        else "; see the settings reference, docs/reference/settings.md")
                problems.append(f"{key}: unknown {'key' if nested else 'setting'}{hint}")
                continue
            message = item["msg"].removeprefix("Value error, ")
            if not item["loc"]:  # a rule across settings
                problems.append(message)
                continue
            problems.append(f"{key} = {own.get(top)!r}: {message}")
        raise InventoryError.for_host(host_name, *problems) from None
