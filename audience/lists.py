"""Lists (segments): definitions and membership.

A list is a named audience used by journeys, scoring gates, routing and suppression. Dynamic
lists are a condition (``audience.conditions``) recomputed whenever an event arrives and whenever
a time window expires (``next_change_at`` becomes a durable timer in the contact workflow), not
nightly. Static and suppression lists are managed by hand; their members come in as
``static_members``. Demand states live in ``audience.demand_states``.

The evaluation functions are pure and deterministic (workflow code calls them). Reading the
files and the registry is the definitions service's job (``definitions``); workflows receive
the parsed configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from audience.conditions import (
    Condition,
    Snapshot,
    config_error,
    next_change_at,
    referenced_demand_states,
    referenced_lists,
)
from audience.demand_states import DemandStatesConfig
from audience.facts import ContactFacts
from revops.errors import ConfigError
from revops.strict import StrictModel
from revops.yamlio import require_mapping

__all__ = [
    "ListDefinition",
    "ListKind",
    "ListsConfig",
    "MembershipResult",
    "check_demand_state_names",
    "diff_memberships",
    "evaluate_memberships",
    "lists_json_schema",
    "parse_lists",
]


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


class ListDefinition(StrictModel):
    """One list: a dynamic one has a ``when`` condition; the hand-managed kinds have none."""

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


class ListsConfig(StrictModel):
    """All list definitions (``config/lists.yaml``); names are unique and references resolve.

    Validation refuses references to undefined lists and reference cycles, and fixes the order
    in which dynamic lists are evaluated (a list after every list it refers to).
    """

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
# Files and schemas
# ---------------------------------------------------------------------------------------------


def parse_lists(
    data: object, source: str = "lists", *, demand_states: DemandStatesConfig | None = None
) -> ListsConfig:
    """Validate a lists definition; ConfigError names ``source`` and the field path.

    With ``demand_states``, demand-state names used in list conditions are checked too.
    """
    try:
        config = ListsConfig.model_validate(require_mapping(data, source, "`version` and `lists`"))
    except ValidationError as exc:
        raise config_error(exc, source) from exc
    if demand_states is not None:
        check_demand_state_names(config, demand_states.order, source)
    return config


def check_demand_state_names(config: ListsConfig, order: Sequence[str], source: str) -> None:
    """Every demand state a list condition names must be one of ``order``."""
    for index, definition in enumerate(config.lists):
        unknown = (
            sorted(referenced_demand_states(definition.when) - set(order))
            if definition.when
            else []
        )
        if unknown:
            raise ConfigError(
                f"{source}: lists[{index}].when: unknown demand state {unknown[0]!r} "
                f"(states: {', '.join(order)})"
            )


def lists_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/lists.yaml`` (for editors and CI checks)."""
    return ListsConfig.model_json_schema(by_alias=True)
