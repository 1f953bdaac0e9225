"""Where journey definitions come from: the library directory and the registry.

Journeys are the one kind with many names: each file in the journeys directory
(``config/journeys/``) is one journey, and each is deployed under its own name (kind
``journey``). The registry numbers versions, so a ``version`` key in a file only matters while
that journey was never deployed. ``journey_catalog`` is the catalog: what new enrollments get,
what the rules compile and what ``revops journeys list`` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from definitions.kinds import JOURNEY, Active, read_active
from journeys.definition import JourneyDefinition
from revops.errors import ConfigError

__all__ = [
    "DeployedJourney",
    "deployable_body",
    "from_registry",
    "journey_catalog",
    "load_journey_library",
]


class DeployedJourney(Protocol):
    """What a journey's registry row offers (``store.registry.DefinitionRow``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def body(self) -> dict[str, Any]: ...


def deployable_body(data: Mapping[str, Any]) -> dict[str, Any]:
    """The body the registry stores: the YAML mapping without ``version`` (it numbers them)."""
    return {key: value for key, value in data.items() if key != "version"}


def from_registry(row: DeployedJourney) -> JourneyDefinition:
    """A deployed version as a definition whose ``version`` is the registry's number."""
    return _deployed(row).model


def _deployed(row: DeployedJourney) -> Active[JourneyDefinition]:
    source = f"deployed journey {row.name!r} v{row.version}"
    model = JOURNEY.parse({**row.body, "version": row.version}, source)
    return Active(model, row.body, source, row.version)


def _library(directory: Path) -> list[Active[JourneyDefinition]]:
    found: list[Active[JourneyDefinition]] = []
    errors: list[str] = []
    names: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            journey = read_active(JOURNEY, path)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        name = journey.model.name
        if name in names:
            errors.append(f"{path}: name: {name!r} is also the name in {names[name]}")
            continue
        names[name] = journey.source
        found.append(journey)
    if errors:
        raise ConfigError("\n".join(errors))
    return found


def load_journey_library(directory: Path) -> list[JourneyDefinition]:
    """Every ``*.yaml`` journey in ``directory``, by file name; all errors reported at once."""
    return [journey.model for journey in _library(directory)]


def journey_catalog(
    deployed: Iterable[DeployedJourney], library: Path | None = None
) -> dict[str, Active[JourneyDefinition]]:
    """The journeys new enrollments get, by name: the deployed version, else the library file.

    ``deployed`` is ``Registry(store).active_all("journey")``; ``library`` the journeys
    directory (files never deployed still enroll, at their own ``version``, default 1).
    """
    found: dict[str, Active[JourneyDefinition]] = {}
    if library is not None and library.is_dir():
        found = {journey.model.name: journey for journey in _library(library)}
    for row in deployed:
        found[row.name] = _deployed(row)
    return {name: found[name] for name in sorted(found)}
