"""The kinds of definition and how each is parsed, whether it comes from a file or the registry.

Every kind (lifecycle rules, scoring model, lists, demand states, routing, ...) is a YAML
document validated by its pydantic model; errors are ConfigErrors that name the source and the
field path. The contact workflow's bundle is assembled here from the deployed version of each
kind, falling back to the file shipped in ``config/`` while nothing is deployed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from models.contact import ContactConfig, LifecycleRules
from revops.conditions import config_error
from revops.errors import ConfigError
from revops.lists import DemandStatesConfig, ListsConfig, _check_state_names
from revops.policies import parse_policies
from revops.routing import parse_routing
from revops.scoring import parse_scoring_model
from revops.yamlio import read_yaml

__all__ = [
    "BUNDLE_KINDS",
    "KINDS",
    "ActiveBody",
    "Kind",
    "build_contact_config",
    "parse_definition",
    "read_definition_file",
]

ActiveBody = Callable[[str], dict[str, Any] | None]
"""Returns the deployed body of a kind, or None when nothing is deployed."""


def _validated(model: type[BaseModel], data: object, source: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from exc


def _parse_lists(data: object, source: str) -> BaseModel:
    return _validated(ListsConfig, data, source)


@dataclass(frozen=True)
class Kind:
    """One kind of definition: its shipped file and its parser."""

    name: str
    filename: str
    parse: Callable[[object, str], BaseModel]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("lifecycle", "lifecycle.yaml", lambda d, s: _validated(LifecycleRules, d, s)),
        Kind("scoring", "scoring.yaml", lambda d, s: parse_scoring_model(d, source=s)),
        Kind("lists", "lists.yaml", _parse_lists),
        Kind(
            "demand_states",
            "demand_states.yaml",
            lambda d, s: _validated(DemandStatesConfig, d, s),
        ),
        Kind("routing", "routing.yaml", lambda d, s: parse_routing(d, s)),
        Kind("policies", "policies.yaml", lambda d, s: parse_policies(d, s)),
    )
}

BUNDLE_KINDS = ("lifecycle", "scoring", "lists", "demand_states")
"""The kinds a contact workflow evaluates itself (its bundle)."""


def parse_definition(kind: str, data: object, source: str) -> BaseModel:
    """Validate ``data`` as a ``kind`` definition; ConfigError names ``source`` and the field."""
    if kind not in KINDS:
        raise ConfigError(f"unknown definition kind {kind!r} (kinds: {', '.join(KINDS)})")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    return KINDS[kind].parse(data, source)


def read_definition_file(kind: str, path: Path) -> tuple[dict[str, Any], BaseModel]:
    """Read and validate a definition file; returns the raw body and the model."""
    data = read_yaml(path)
    model = parse_definition(kind, data, str(path))
    assert isinstance(data, dict)
    return data, model


def build_contact_config(
    config_dir: Path, active_body: ActiveBody | None = None, **overrides: Any
) -> ContactConfig:
    """The contact workflow's bundle: deployed versions first, shipped files otherwise."""
    bodies: dict[str, Any] = {}
    models: dict[str, BaseModel] = {}
    for kind in BUNDLE_KINDS:
        deployed = active_body(kind) if active_body else None
        if deployed is not None:
            bodies[kind] = deployed
            models[kind] = parse_definition(kind, deployed, f"deployed {kind}")
        else:
            path = config_dir / KINDS[kind].filename
            bodies[kind], models[kind] = read_definition_file(kind, path)
    lists, states = models["lists"], models["demand_states"]
    assert isinstance(lists, ListsConfig) and isinstance(states, DemandStatesConfig)
    _check_state_names(lists, states.order, Path("lists"))
    digest = hashlib.sha256(json.dumps(bodies, sort_keys=True, default=str).encode())
    return ContactConfig(
        version=digest.hexdigest()[:12],
        lifecycle=models["lifecycle"],
        scoring=models["scoring"],
        lists=lists,
        demand_states=states,
        **overrides,
    )
