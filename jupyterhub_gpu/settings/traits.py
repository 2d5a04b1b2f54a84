"""The settings that map one to one onto a hub trait, as the hub's configuration sets them."""

from __future__ import annotations

from jupyterhub_gpu.settings.model import CONCERNS, HubSettings


def hub_traits(settings: HubSettings) -> dict:
    """``{"Class.trait": value}`` for every setting that names its trait (see ``trait``), where its concern applies
    and it has a value: what the hub's configuration sets as it is, in one loop."""
    values = settings.model_dump(mode="json")
    traits = {}
    for concern in CONCERNS:
        if not concern.applies(settings):
            continue
        for name, field in concern.model_fields.items():
            target = (field.json_schema_extra or {}).get("trait")
            if target and values[name] is not None:
                traits[target] = values[name]
    return traits
