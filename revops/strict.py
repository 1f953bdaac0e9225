"""The base of every definition model, and the discriminator of one-key unions.

Definitions (conditions, lists, demand states, journeys, scoring, policies, routing, calendars,
handoff settings) are YAML that people write. A misspelt key must be an error naming the field,
never a silent default, and a parsed definition must not change under the code holding it, so
every definition model derives from ``StrictModel``. A field whose YAML name is a Python keyword
(``list``, ``if``, ``for``) has an alias: it validates from either name and serializes under
the YAML one, so a definition dumps back to the shape it was written in.

Conditions (``{trait: ...}``, ``{all: [...]}``) and journey steps (``{id, send: ...}``) name
their kind by the one key present; ``one_key_discriminator`` picks the union member from that
key, so an error is reported for the member meant, not for every member of the union.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Discriminator

__all__ = ["StrictModel", "one_key_discriminator"]


class StrictModel(BaseModel):
    """Immutable, typo-proof (unknown keys refused), YAML names in and out."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


def one_key_discriminator(
    prefix: str, kinds: Mapping[str, type[BaseModel]], *, error_type: str, message: str
) -> Discriminator:
    """The discriminator of a union whose members are tagged ``prefix + key``.

    A mapping is the member named by the one key of ``kinds`` it holds; a model instance is
    its own member. A mapping with none or several of the keys fails with ``error_type`` and
    ``message`` (``prefix`` lets error paths drop the tags: ``cond:any`` is not YAML).
    """

    def tag(data: Any) -> str | None:
        if isinstance(data, Mapping):
            found = [kind for kind in kinds if kind in data]
            return prefix + found[0] if len(found) == 1 else None
        for kind, model in kinds.items():
            if type(data) is model:
                return prefix + kind
        return None

    return Discriminator(tag, custom_error_type=error_type, custom_error_message=message)
