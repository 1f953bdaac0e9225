"""Lists (segments) and demand states: definitions, membership and the current buying state.

A list is a named audience used by journeys, scoring gates, routing and suppression. Dynamic
lists are a condition (``revops.conditions``) recomputed whenever an event arrives and whenever
a time window expires (``next_change_at`` becomes a durable timer in the contact workflow), not
nightly. Static and suppression lists are managed by hand; their members come in as
``static_members``. Demand states (SPEC R1) are ordered buying states; the current one is the
furthest whose condition holds.

The evaluation functions are pure and deterministic (workflow code calls them). The ``load_*``
functions read files, so only activities and the CLI call them; workflows receive the parsed
configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from models.facts import ContactFacts
from revops.conditions import (
    Condition,
    Snapshot,
    config_error,
    next_change_at,
    next_outcome_change,
    referenced_demand_states,
    referenced_lists,
)
from revops.errors import ConfigError

__all__ = [
    "DemandStateDefinition",
    "DemandStateResult",
    "DemandStatesConfig",
    "ListDefinition",
    "ListKind",
    "ListsConfig",
    "MembershipResult",
    "current_demand_state",
    "default_demand_states",
    "demand_states_json_schema",
    "diff_memberships",
    "evaluate_demand_state",
    "evaluate_memberships",
    "lists_json_schema",
    "load_demand_states",
    "load_lists",
]

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------


class ListKind(StrEnum):
    """How a list gets its members."""

    DYNAMIC = "dynamic"
    """Computed from ``when`` as facts change and windows expire."""
    STATIC = "static"
    """Added and removed by hand or by a journey step (e.g. Re-nurture)."""
    SUPPRESSION = "suppression"
    """Like static, but its members are kept out of marketing sends (e.g. Do Not Contact)."""


class ListDefinition(BaseModel):
    """One list: a dynamic one has a ``when`` condition; the hand-managed kinds have none."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    kind: ListKind = ListKind.DYNAMIC
    when: Condition | None = None

    @model_validator(mode="after")
    def _when_fits_kind(self) -> ListDefinition:
        if self.kind is ListKind.DYNAMIC and self.when is None:
            raise ValueError(f"dynamic list {self.name!r} needs a `when` condition")
        if self.kind is not ListKind.DYNAMIC and self.when is not None:
            raise ValueError(
                f"{self.kind.value} list {self.name!r} is managed by hand: remove `when` "
                "or make it kind: dynamic"
            )
        return self


class ListsConfig(BaseModel):
    """All list definitions (``config/lists.yaml``); names are unique and references resolve.

    Validation refuses references to undefined lists and reference cycles, and fixes the order
    in which dynamic lists are evaluated (a list after every list it refers to).
    """

    model_config = _MODEL_CONFIG

    version: int = Field(ge=1)
    lists: tuple[ListDefinition, ...] = ()

    _order: tuple[tuple[str, Condition], ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _consistent(self) -> ListsConfig:
        _check_unique_names(self.lists)
        _check_references(self.lists)
        self._order = _dependency_order(self.lists)
        return self

    def get(self, name: str) -> ListDefinition | None:
        """The definition called ``name``, if any."""
        return next((d for d in self.lists if d.name == name), None)

    @property
    def hand_managed(self) -> frozenset[str]:
        """Names of the static and suppression lists."""
        return frozenset(d.name for d in self.lists if d.kind is not ListKind.DYNAMIC)

    @property
    def suppression(self) -> frozenset[str]:
        """Names of the suppression lists (the send path checks membership in these)."""
        return frozenset(d.name for d in self.lists if d.kind is ListKind.SUPPRESSION)

    @property
    def evaluation_order(self) -> tuple[tuple[str, Condition], ...]:
        """Dynamic lists as (name, condition), each after the lists it refers to."""
        return self._order


def _check_unique_names(lists: Sequence[ListDefinition]) -> None:
    first: dict[str, int] = {}
    for index, definition in enumerate(lists):
        if definition.name in first:
            raise ValueError(
                f"lists[{index}].name: duplicate list name {definition.name!r} "
                f"(first defined at lists[{first[definition.name]}])"
            )
        first[definition.name] = index


def _check_references(lists: Sequence[ListDefinition]) -> None:
    known = {definition.name for definition in lists}
    for index, definition in enumerate(lists):
        if definition.when is None:
            continue
        unknown = sorted(referenced_lists(definition.when) - known)
        if unknown:
            raise ValueError(
                f"lists[{index}].when: list {definition.name!r} refers to unknown list "
                f"{unknown[0]!r} (defined lists: {', '.join(sorted(known))})"
            )


def _dependency_order(lists: Sequence[ListDefinition]) -> tuple[tuple[str, Condition], ...]:
    """Dynamic lists, dependencies first, otherwise in file order; cycles are refused."""
    index = {definition.name: i for i, definition in enumerate(lists)}
    order: list[tuple[str, Condition]] = []
    finished: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in finished:
            return
        if name in trail:
            cycle = (*trail[trail.index(name) :], name)
            raise ValueError(
                f"lists[{index[cycle[0]]}].when: lists refer to each other in a cycle: "
                + " -> ".join(repr(n) for n in cycle)
            )
        condition = lists[index[name]].when
        for dependency in sorted(
            referenced_lists(condition) if condition else (), key=index.__getitem__
        ):
            visit(dependency, (*trail, name))
        finished.add(name)
        if condition is not None:
            order.append((name, condition))

    for definition in lists:
        visit(definition.name, ())
    return tuple(order)


class MembershipResult(BaseModel):
    """Every list the contact is on now, and when that can next change without new events.

    ``members`` is a set: iterate it sorted in workflow code (string hashing differs between
    worker processes, and replays must see the same order).
    """

    model_config = ConfigDict(frozen=True)

    members: frozenset[str]
    next_change_at: datetime | None


def evaluate_memberships(
    config: ListsConfig,
    facts: ContactFacts | Snapshot,
    static_members: AbstractSet[str] = frozenset(),
) -> MembershipResult:
    """Compute all memberships at ``facts.now``.

    ``static_members`` are the contact's hand-managed lists; names that are not static or
    suppression lists of ``config`` are ignored (dynamic lists are always recomputed, and a
    deleted list has no members); ``facts.lists`` is not read. Dynamic lists are evaluated in
    dependency order, so a list that refers to another sees that list's fresh result.
    ``next_change_at`` is the earliest moment any list flips with no new events: exact, so a
    durable timer set to it fires on the moment a window expires.
    """
    snapshot = facts if isinstance(facts, Snapshot) else Snapshot.of(facts)
    members = set(static_members & config.hand_managed)
    view = snapshot.with_lists(members)  # sees each result as soon as it is computed
    for name, condition in config.evaluation_order:
        if condition.holds(view):
            members.add(name)
    moment = _earliest(next_change_at(cond, view) for _, cond in config.evaluation_order)
    return MembershipResult(members=frozenset(members), next_change_at=moment)


def diff_memberships(
    before: AbstractSet[str], after: AbstractSet[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(entered, left), each sorted so workflow code emits them in a replay-stable order."""
    return tuple(sorted(after - before)), tuple(sorted(before - after))


# ---------------------------------------------------------------------------------------------
# Demand states
# ---------------------------------------------------------------------------------------------


class DemandStateDefinition(BaseModel):
    """One buying state; its position in the file is its rank. No ``when``: always holds."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    when: Condition | None = None


class DemandStatesConfig(BaseModel):
    """The ordered buying states (``config/demand_states.yaml``), earliest first."""

    model_config = _MODEL_CONFIG

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


_DEFAULT_DEMAND_STATES: Mapping[str, Any] = {
    "version": 1,
    "states": [
        {"name": "unaware", "description": "No observable interest yet."},
        {
            "name": "problem-aware",
            "description": "Reads about the problem: opens emails, attends webinars, signs up.",
            "when": {
                "any": [
                    {"event": "Email Opened", "within": "90d"},
                    {"event": "Webinar Attended", "within": "90d"},
                    {"event": "Signed Up", "within": "90d"},
                ]
            },
        },
        {
            "name": "solution-aware",
            "description": "Looks at how a product like ours solves it.",
            "when": {
                "any": [
                    {"event": "Case Study Viewed", "within": "60d"},
                    {"event": "Pricing Page Viewed", "within": "60d"},
                ]
            },
        },
        {
            "name": "partner-evaluating",
            "description": "Compares vendors: several case studies, or case studies and pricing.",
            "when": {
                "any": [
                    {"event": "Case Study Viewed", "at_least": 2, "within": "30d"},
                    {
                        "all": [
                            {"event": "Case Study Viewed", "within": "30d"},
                            {"event": "Pricing Page Viewed", "within": "30d"},
                        ]
                    },
                ]
            },
        },
        {
            "name": "technical-validating",
            "description": "Reads integration documentation and visits the security page.",
            "when": {
                "all": [
                    {"event": "Integration Docs Viewed", "within": "30d"},
                    {"event": "Security Page Viewed", "within": "30d"},
                ]
            },
        },
        {
            "name": "commercial-negotiating",
            "description": "Views pricing twice in five days, or asks sales for a quote.",
            "when": {
                "any": [
                    {"event": "Pricing Page Viewed", "at_least": 2, "within": "5d"},
                    {"event": "Contact Sales Submitted", "within": "14d"},
                ]
            },
        },
        {
            "name": "post-purchase",
            "description": "A customer.",
            "when": {"stage": {"at_least": "Customer"}},
        },
    ],
}


def default_demand_states() -> DemandStatesConfig:
    """The SPEC R1 defaults (the same as the shipped ``config/demand_states.yaml``)."""
    return DemandStatesConfig.model_validate(_DEFAULT_DEMAND_STATES)


# ---------------------------------------------------------------------------------------------
# Files and schemas
# ---------------------------------------------------------------------------------------------


def _read_mapping(path: Path, expected: str) -> Mapping[str, Any]:
    """Parse a YAML file whose top level must be a mapping; problems name the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping with {expected}, got {type(raw).__name__}")
    return raw


def load_lists(path: str | Path, *, demand_states: DemandStatesConfig | None = None) -> ListsConfig:
    """Read and check a lists file; ConfigError names the file and the field path.

    With ``demand_states``, demand-state names used in list conditions are checked too.
    """
    path = Path(path)
    raw = _read_mapping(path, "`version` and `lists`")
    try:
        config = ListsConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, str(path)) from exc
    if demand_states is not None:
        _check_state_names(config, demand_states.order, path)
    return config


def _check_state_names(config: ListsConfig, order: Sequence[str], path: Path) -> None:
    for index, definition in enumerate(config.lists):
        unknown = (
            sorted(referenced_demand_states(definition.when) - set(order))
            if definition.when
            else []
        )
        if unknown:
            raise ConfigError(
                f"{path}: lists[{index}].when: unknown demand state {unknown[0]!r} "
                f"(states: {', '.join(order)})"
            )


def load_demand_states(path: str | Path) -> DemandStatesConfig:
    """Read and check a demand states file; ConfigError names the file and the field path."""
    path = Path(path)
    raw = _read_mapping(path, "`version` and `states`")
    try:
        return DemandStatesConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, str(path)) from exc


def lists_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/lists.yaml`` (for editors and CI checks)."""
    return ListsConfig.model_json_schema(by_alias=True)


def demand_states_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/demand_states.yaml``."""
    return DemandStatesConfig.model_json_schema(by_alias=True)
