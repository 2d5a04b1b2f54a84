"""A concern: one group of settings, a section of the settings reference, and how a setting names its trait."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


def trait(name: str) -> dict:
    """A setting's counterpart in the hub's configuration (``Class.trait``), set from the setting as it is where
    the setting's concern applies (see hub_traits): one declaration, and the hub's configuration needs no line."""
    return {"trait": name}


class Concern(BaseModel):
    """One concern's settings; HubSettings is all of them."""

    # The concern's heading in the settings reference.
    title: ClassVar[str] = ""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def applies(cls, settings) -> bool:
        """Whether this concern's settings reach the hub's configuration for these settings."""
        return True
