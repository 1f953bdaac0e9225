"""Demand states (SPEC R1): the ordered buying states and the contact's current one.

A definition (``config/demand_states.yaml``, versioned in the registry) lists the states earliest
first; each has a condition of the one condition language (``audience.conditions``), except the
baseline, which always holds. The current state is the furthest whose condition holds. States
are windowed behaviours, so a contact can fall back; ``evaluate_demand_state`` also says the
exact moment the answer next changes with no new events, which the contact workflow turns into
a durable timer. The shipped file is the one source of the defaults (``default_demand_states``).

The evaluation functions are pure and deterministic (workflow code calls them).
``default_demand_states`` reads the shipped file, so only activities, the CLI and tests call
it; workflows receive the parsed configuration (the definitions service reads it, or the
deployed version).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audience.conditions import (
    SHIPPED_DEMAND_STATES,
    Condition,
    Snapshot,
    config_error,
    next_outcome_change,
    referenced_demand_states,
)
from audience.facts import ContactFacts
from revops.strict import StrictModel
from revops.yamlio import read_mapping, require_mapping

__all__ = [
    "DemandStateDefinition",
    "DemandStateEntry",
    "DemandStateResult",
    "DemandStatesConfig",
    "current_demand_state",
    "default_demand_states",
    "demand_states_json_schema",
    "evaluate_demand_state",
    "parse_demand_states",
]


class DemandStateDefinition(StrictModel):
    """One buying state; its position in the file is its rank. No ``when``: always holds."""

    name: str = Field(min_length=1)
    description: str = ""
    when: Condition | None = None


class DemandStatesConfig(StrictModel):
    """The ordered buying states (``config/demand_states.yaml``), earliest first."""

    version: int = Field(ge=1)
    states: tuple[DemandStateDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DemandStatesConfig:
        names = self.order
        for index, state in enumerate(self.states):
            if state.name in names[:index]:
                raise ValueError(f"states[{index}].name: duplicate state {state.name!r}")
            unknown = (
                sorted(referenced_demand_states(state.when) - set(names)) if state.when else []
            )
            if unknown:
                raise ValueError(
                    f"states[{index}].when: unknown demand state {unknown[0]!r} "
                    f"(states: {', '.join(names)})"
                )
        return self

    @property
    def order(self) -> tuple[str, ...]:
        """State names, earliest first (the order ``demand_state: {at_least: X}`` uses)."""
        return tuple(state.name for state in self.states)

    def snapshot(self, facts: ContactFacts | Snapshot) -> Snapshot:
        """``facts`` prepared for evaluation with this configuration's state order."""
        if isinstance(facts, Snapshot):
            return replace(facts, demand_state_order=self.order)
        return Snapshot.of(facts, demand_state_order=self.order)


class DemandStateResult(BaseModel):
    """The current demand state and the moment it can next change without new events."""

    model_config = ConfigDict(frozen=True)

    state: str | None
    next_change_at: datetime | None


class DemandStateEntry(BaseModel):
    """A demand (buying) state entered, and the one it came from."""

    state: str
    at: datetime
    previous: str | None = None


def _furthest(config: DemandStatesConfig, snapshot: Snapshot) -> str | None:
    for state in reversed(config.states):
        if state.when is None or state.when.holds(snapshot):
            return state.name
    return None


def evaluate_demand_state(
    config: DemandStatesConfig, facts: ContactFacts | Snapshot
) -> DemandStateResult:
    """The furthest state whose condition holds now, and when that answer next changes.

    States are windowed behaviours, so a contact can fall back (pricing views age out of
    commercial-negotiating); ``next_change_at`` is exact, for a durable timer. Conditions see
    the list memberships and previous demand state in ``facts``: compute lists first.
    """
    snapshot = config.snapshot(facts)
    conditions = [state.when for state in config.states if state.when is not None]
    moment = next_outcome_change(conditions, snapshot, lambda view: _furthest(config, view))
    return DemandStateResult(state=_furthest(config, snapshot), next_change_at=moment)


def current_demand_state(config: DemandStatesConfig, facts: ContactFacts | Snapshot) -> str | None:
    """The furthest demand state whose condition holds at ``facts.now`` (None if none does)."""
    return _furthest(config, config.snapshot(facts))


_EXPECTED = "`version` and `states`"


def parse_demand_states(data: object, source: str = "demand states") -> DemandStatesConfig:
    """Validate a demand states definition; ConfigError names ``source`` and the field path."""
    try:
        return DemandStatesConfig.model_validate(require_mapping(data, source, _EXPECTED))
    except ValidationError as exc:
        raise config_error(exc, source) from exc


@cache
def default_demand_states() -> DemandStatesConfig:
    """The SPEC R1 defaults: the shipped ``config/demand_states.yaml`` (read once)."""
    shipped = read_mapping(SHIPPED_DEMAND_STATES, _EXPECTED)
    return parse_demand_states(shipped, str(SHIPPED_DEMAND_STATES))


def demand_states_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/demand_states.yaml``."""
    return DemandStatesConfig.model_json_schema(by_alias=True)
