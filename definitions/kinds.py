"""The kinds of definition: for each, its registry name, its shipped file, model and parser.

Every kind (lifecycle rules, scoring model, lists, demand states, recycle policies, routing,
policies, handoff settings, the trait schema, journeys, attribution, the CRM connector,
accounts) is a YAML document validated by its pydantic model. ``Kind`` objects are typed keys:
``definitions.get(ROUTING)`` is a ``RoutingConfig`` to mypy. Errors are ConfigErrors that
name the source (a file, or ``deployed <kind> v<n>``) and the field path.

``read_file`` is the one reader of a definition file; the domain packages only validate data
they are given (``parse_*``), so workflow code never touches a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from analysis.attribution import AttributionDefinition, parse_attribution
from audience.accounts import AccountsConfig
from audience.conditions import config_error
from audience.demand_states import DemandStatesConfig, parse_demand_states
from audience.lists import ListsConfig, parse_lists
from audience.traits import TraitSchema
from crm.definition import CrmDefinition, parse_crm
from handoff.routing import RoutingConfig, parse_routing
from handoff.settings import HandoffSettings
from journeys.definition import JourneyDefinition, parse_journey
from lifecycle.recycle import RecyclePolicy
from lifecycle.stages import LifecycleRules
from revops.errors import ConfigError
from revops.yamlio import read_yaml
from rules.policies import Policies, parse_policies
from scoring.model import ScoringModel, parse_scoring_model

__all__ = [
    "ACCOUNTS",
    "ATTRIBUTION",
    "BUNDLE",
    "CRM",
    "DEMAND_STATES",
    "HANDOFF",
    "JOURNEY",
    "KINDS",
    "LIFECYCLE",
    "LISTS",
    "POLICIES",
    "RECYCLE",
    "ROUTING",
    "SCORING",
    "TRAITS",
    "Active",
    "Kind",
    "kind_named",
    "read_active",
    "read_file",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, eq=False)
class Kind(Generic[M]):
    """One kind of definition, and a typed key for the definitions service.

    ``filename`` is the file shipped in ``config/`` (journeys: one file per journey in the
    journeys directory, so none); ``optional`` kinds mean their defaults when it is missing.
    """

    name: str
    filename: str
    parse: Callable[[Any, str], M]
    optional: bool = False


@dataclass(frozen=True)
class Active(Generic[M]):
    """A definition as read: the model, the body it came from, and where from.

    ``version`` is the registry's number for a deployed version, None for a file.
    """

    model: M
    body: dict[str, Any]
    source: str
    version: int | None = None


def _mapping(data: object, source: str, *, empty_is_defaults: bool) -> Mapping[str, Any]:
    if data is None and empty_is_defaults:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    return data


def _validator(model: type[M], *, empty_is_defaults: bool = False) -> Callable[[Any, str], M]:
    def parse(data: object, source: str) -> M:
        try:
            return model.model_validate(_mapping(data, source, empty_is_defaults=empty_is_defaults))
        except ValidationError as exc:
            raise config_error(exc, source) from exc

    return parse


LIFECYCLE: Kind[LifecycleRules] = Kind("lifecycle", "lifecycle.yaml", _validator(LifecycleRules))
SCORING: Kind[ScoringModel] = Kind(
    "scoring",
    "scoring.yaml",
    lambda data, source: parse_scoring_model(data, source=source),
)
LISTS: Kind[ListsConfig] = Kind("lists", "lists.yaml", parse_lists)
DEMAND_STATES: Kind[DemandStatesConfig] = Kind(
    "demand_states", "demand_states.yaml", parse_demand_states
)
RECYCLE: Kind[RecyclePolicy] = Kind(
    "recycle", "recycle.yaml", _validator(RecyclePolicy, empty_is_defaults=True), optional=True
)
ROUTING: Kind[RoutingConfig] = Kind(
    "routing",
    "routing.yaml",
    lambda data, source: parse_routing(_mapping(data, source, empty_is_defaults=True), source),
)
POLICIES: Kind[Policies] = Kind(
    "policies",
    "policies.yaml",
    lambda data, source: parse_policies(_mapping(data, source, empty_is_defaults=True), source),
)
HANDOFF: Kind[HandoffSettings] = Kind(
    "handoff",
    "handoff.yaml",
    _validator(HandoffSettings, empty_is_defaults=True),
    optional=True,
)
TRAITS: Kind[TraitSchema] = Kind(
    "traits", "traits.yaml", _validator(TraitSchema, empty_is_defaults=True), optional=True
)
JOURNEY: Kind[JourneyDefinition] = Kind("journey", "", parse_journey)
ATTRIBUTION: Kind[AttributionDefinition] = Kind(
    "attribution", "attribution.yaml", parse_attribution
)
CRM: Kind[CrmDefinition] = Kind("crm", "crm.yaml", parse_crm, optional=True)
ACCOUNTS: Kind[AccountsConfig] = Kind(
    "accounts",
    "accounts.yaml",
    _validator(AccountsConfig, empty_is_defaults=True),
    optional=True,
)

KINDS: Mapping[str, Kind[Any]] = {
    kind.name: kind
    for kind in (
        LIFECYCLE,
        SCORING,
        LISTS,
        DEMAND_STATES,
        RECYCLE,
        ROUTING,
        POLICIES,
        HANDOFF,
        TRAITS,
        JOURNEY,
        ATTRIBUTION,
        CRM,
        ACCOUNTS,
    )
}
"""Every kind by its registry name."""

BUNDLE: tuple[Kind[Any], ...] = (LIFECYCLE, SCORING, LISTS, DEMAND_STATES, RECYCLE, ACCOUNTS)
"""The kinds a contact workflow evaluates itself (its bundle): deploying one of them tells
running contacts to reload."""


def kind_named(name: str) -> Kind[Any]:
    """The kind called ``name``; ConfigError listing the kinds otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        raise ConfigError(f"unknown definition kind {name!r} (kinds: {', '.join(KINDS)})")
    return kind


def read_active(kind: Kind[M], path: Path) -> Active[M]:
    """Read and validate one definition file (a missing optional one means the defaults)."""
    data = {} if kind.optional and not path.exists() else read_yaml(path)
    data = _as_stored(data, str(path))
    model = kind.parse(data, str(path))
    body = dict(data) if isinstance(data, Mapping) else {}
    return Active(model, body, str(path))


def _as_stored(data: object, source: str) -> object:
    """The data as the registry keeps it (JSON): YAML dates and times become ISO text, so a
    file and its deployed version validate alike."""
    try:
        return json.loads(json.dumps(data, default=_iso))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot be kept as JSON: {exc}") from exc


def _iso(value: object) -> str:
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def read_file(kind: Kind[M], path: Path) -> M:
    """The model of one definition file (see ``read_active``)."""
    return read_active(kind, path).model
