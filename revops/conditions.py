"""The one condition language: lists, journey triggers/branches/goals, routing and scoring filters.

Every part of revops that asks "does this contact qualify?" says so with the same YAML shape, so
an ops engineer learns one language and ``why`` explanations read the same everywhere. This
module owns that shape (pydantic models parsed from YAML/dicts), its evaluation against one
``ContactFacts`` snapshot, and ``next_change_at``: the exact moment a result flips with no new
events (an event leaving a ``within`` window). The contact workflow turns that moment into a
durable timer, which is how windowed lists expire on time instead of nightly.

Forms (YAML)::

    {trait: industry, in: [Software, Fintech]}        # eq ne in not_in gt gte lt lte between
    {score: fit, gte: 60}                             # contains matches exists domain_in
    {stage: {at_least: MQL}}                          # eq ne in not_in at_least at_most
    {list: Pricing Engaged ICP}
    {demand_state: {at_least: solution-aware}}        # order from the Snapshot (see below)
    {event: Pricing Page Viewed, where: {path: {contains: /pricing}}, at_least: 3, within: 7d}
    {all: [...]}   {any: [...]}   {not: {...}}

``demand_state: {at_least/at_most}`` needs the ordered state names. They come from the
``Snapshot`` being evaluated (``Snapshot.of(facts, demand_state_order=...)``); a plain
``ContactFacts`` is evaluated with ``DEFAULT_DEMAND_STATE_ORDER`` (SPEC R1).

This module is imported by Temporal workflow code, so it must stay deterministic: no I/O, no
clocks (the time is always ``facts.now``), no randomness and no module-level mutable state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from operator import attrgetter
from types import MappingProxyType
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from models.facts import ContactFacts, EventRecord
from revops.errors import ConfigError

__all__ = [
    "DEFAULT_DEMAND_STATE_ORDER",
    "STAGE_ORDER",
    "AllCondition",
    "AnyCondition",
    "Condition",
    "DemandStateCondition",
    "DemandStateTest",
    "Duration",
    "EventCondition",
    "ListCondition",
    "NotCondition",
    "Predicate",
    "ScoreCondition",
    "Snapshot",
    "StageCondition",
    "StageTest",
    "TraitCondition",
    "condition_json_schema",
    "config_error",
    "evaluate",
    "format_duration",
    "iter_nodes",
    "lookup",
    "next_change_at",
    "next_outcome_change",
    "parse_condition",
    "parse_duration",
    "referenced_demand_states",
    "referenced_lists",
]

STAGE_ORDER: tuple[str, ...] = (
    "Subscriber",
    "Lead",
    "MQL",
    "SAL",
    "SQL",
    "Opportunity",
    "Customer",
    "Evangelist",
)
"""Lifecycle stages, earliest first; ``stage: {at_least: X}`` compares positions in it."""

DEFAULT_DEMAND_STATE_ORDER: tuple[str, ...] = (
    "unaware",
    "problem-aware",
    "solution-aware",
    "partner-evaluating",
    "technical-validating",
    "commercial-negotiating",
    "post-purchase",
)
"""The buying states of SPEC R1, earliest first, used when no other order is supplied."""

# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"\s*(\d+)\s*([mhdw])\s*", re.IGNORECASE)
_UNIT_SECONDS = MappingProxyType({"w": 604_800, "d": 86_400, "h": 3_600, "m": 60})
_DURATION_HINT = "use 30m, 12h, 7d, 2w"


def _to_timedelta(value: object) -> timedelta:
    """Parse a duration or raise ValueError (the form pydantic validators need)."""
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, int) and not isinstance(value, bool):
        delta = timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
        delta = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2].lower()])
    else:
        raise ValueError(f"{value!r} is not a duration ({_DURATION_HINT})")
    if delta <= timedelta(0):
        raise ValueError(f"{value!r} is not a positive duration ({_DURATION_HINT})")
    return delta


def parse_duration(value: object) -> timedelta:
    """``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` or an int of seconds as a positive timedelta.

    Raises ConfigError (not ValueError) because a bad duration is always a definition mistake
    the ops engineer has to fix.
    """
    try:
        return _to_timedelta(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def format_duration(delta: timedelta) -> str | int | float:
    """The shortest YAML form of ``delta`` (``"2w"``, ``"7d"``...), else its seconds."""
    seconds = delta.total_seconds()
    whole = int(seconds)
    if whole != seconds:
        return seconds
    for unit, size in _UNIT_SECONDS.items():
        if unit != "w" and whole % size == 0:  # "14d" reads better than "2w" in a list file
            return f"{whole // size}{unit}"
    return whole


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[0-9]+\s*[mhdwMHDW]\s*$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": "A duration: 30m, 12h, 7d, 2w, or whole seconds.",
        }
    ),
]
"""A positive duration field: parsed from ``7d`` etc., written back in the same form."""

# ---------------------------------------------------------------------------------------------
# The evaluation snapshot
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """ContactFacts prepared for evaluating many conditions, possibly at other moments.

    Events are grouped by name once, so fifty list conditions do not each scan the whole
    history; ``at`` and ``with_lists`` make cheap variants sharing that index (used to look
    ahead for window expiry and to feed freshly computed list memberships to nested lists).
    """

    facts: ContactFacts
    now: datetime
    lists: AbstractSet[str]
    demand_state_order: tuple[str, ...]
    events_by_name: Mapping[str, tuple[EventRecord, ...]]

    @classmethod
    def of(
        cls,
        facts: ContactFacts,
        *,
        demand_state_order: Sequence[str] = DEFAULT_DEMAND_STATE_ORDER,
    ) -> Snapshot:
        """Index ``facts`` for evaluation; ``demand_state_order`` ranks demand-state names."""
        grouped: dict[str, list[EventRecord]] = {}
        for event in sorted(facts.events, key=attrgetter("at")):
            grouped.setdefault(event.name, []).append(event)
        return cls(
            facts=facts,
            now=facts.now,
            lists=facts.lists,
            demand_state_order=tuple(demand_state_order),
            events_by_name=MappingProxyType({k: tuple(v) for k, v in grouped.items()}),
        )

    def at(self, now: datetime) -> Snapshot:
        """The same facts seen at ``now`` (no new events): how expiry is looked ahead."""
        return replace(self, now=now)

    def with_lists(self, lists: AbstractSet[str]) -> Snapshot:
        """The same facts with other list memberships (fresh results for nested lists)."""
        return replace(self, lists=lists)

    def events_named(self, name: str) -> tuple[EventRecord, ...]:
        """Events called ``name``, oldest first."""
        return self.events_by_name.get(name, ())


def _snapshot(facts: ContactFacts | Snapshot) -> Snapshot:
    return facts if isinstance(facts, Snapshot) else Snapshot.of(facts)


# ---------------------------------------------------------------------------------------------
# Value tests shared by traits, scores and event properties
# ---------------------------------------------------------------------------------------------

Scalar = Union[bool, int, float, str]  # noqa: UP007  # bool first: pydantic keeps True a bool
Number = Union[int, float, str]  # noqa: UP007  # str so ISO dates can be compared too


def _missing(value: Any) -> bool:
    """None and "" both mean "we do not know": CRMs send either for an empty field."""
    return value is None or (isinstance(value, str) and not value.strip())


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _comparable(value: Any, operand: Any) -> tuple[Any, Any] | None:
    """Bring a fact and an operand to one type, or None when they cannot be compared.

    Forms send ``"250"`` for a number and CRMs differ in capitalisation, so numbers compare
    numerically even when one side is a numeric string, and strings compare case-insensitively.
    """
    if _missing(value):
        return None
    if isinstance(operand, bool):
        if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
            return value.strip().casefold() == "true", operand
        return (value, operand) if isinstance(value, bool) else None
    if isinstance(operand, int | float) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    ):
        left, right = _as_number(value), _as_number(operand)
        return None if left is None or right is None else (left, right)
    if isinstance(value, str) and isinstance(operand, str):
        return value.casefold(), operand.casefold()
    return None


def _items(value: Any) -> tuple[Any, ...]:
    """A list-valued fact (tags, interests) is tested element by element."""
    return tuple(value) if isinstance(value, list | tuple | set | frozenset) else (value,)


def _equal(value: Any, operand: Any) -> bool:
    pair = _comparable(value, operand)
    return pair is not None and pair[0] == pair[1]


def _one_of(value: Any, operands: tuple[Any, ...]) -> bool:
    return any(_equal(item, op) for item in _items(value) for op in operands)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, operand: Any) -> bool:
        pair = _comparable(value, operand)
        return pair is not None and _safe_compare(test, pair)

    return check


def _safe_compare(test: Callable[[Any, Any], bool], pair: tuple[Any, Any]) -> bool:
    try:
        return test(pair[0], pair[1])
    except TypeError:
        return False


def _between(value: Any, bounds: tuple[Any, Any]) -> bool:
    return _OPS["gte"](value, bounds[0]) and _OPS["lte"](value, bounds[1])


def _contains(value: Any, operand: Any) -> bool:
    if isinstance(value, str):
        return str(operand).casefold() in value.casefold()
    if isinstance(value, list | tuple | set | frozenset):
        return any(_equal(item, operand) for item in value)
    return False


def _matches(value: Any, pattern: re.Pattern[str]) -> bool:
    if _missing(value) or isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    return pattern.fullmatch(str(value)) is not None


def _domain_in(value: Any, domains: tuple[str, ...]) -> bool:
    """Compare the part after '@' (or the value itself); subdomains match their parent."""
    if not isinstance(value, str) or _missing(value):
        return False
    domain = value.rsplit("@", 1)[-1].strip().casefold()
    return any(domain == d or domain.endswith("." + d) for d in domains)


_OPS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        "eq": _equal,
        "ne": lambda value, operand: not _equal(value, operand),
        "in": _one_of,
        "not_in": lambda value, operands: not _one_of(value, operands),
        "gt": _ordered(lambda a, b: bool(a > b)),
        "gte": _ordered(lambda a, b: bool(a >= b)),
        "lt": _ordered(lambda a, b: bool(a < b)),
        "lte": _ordered(lambda a, b: bool(a <= b)),
        "between": _between,
        "contains": _contains,
        "matches": _matches,
        "exists": lambda value, wanted: (not _missing(value)) == wanted,
        "domain_in": _domain_in,
    }
)


def lookup(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]``, else a dotted path into nested mappings (``context.page.path``)."""
    if key in data:
        return data[key]
    current: Any = data
    for part in key.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


class _Node(BaseModel):
    """Common model settings: immutable, typo-proof (unknown keys refused), YAML names."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Predicate(_Node):
    """Tests one value (a trait, a score, an event property); all given operators must hold.

    Strings compare case-insensitively and numeric strings compare as numbers. A missing value
    (absent, None or "") satisfies only ``ne``, ``not_in`` and ``exists: false``.
    """

    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    between: tuple[Number, Number] | None = None
    contains: Scalar | None = None
    matches: str | None = Field(default=None, description="Regex, full match, ignoring case.")
    exists: bool | None = None
    domain_in: tuple[str, ...] | None = None

    @field_validator("matches")
    @classmethod
    def _regex_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
        return pattern

    @field_validator("domain_in")
    @classmethod
    def _normalise_domains(cls, domains: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if domains is None else tuple(d.strip().lstrip("@").casefold() for d in domains)

    @model_validator(mode="after")
    def _has_an_operator(self) -> Predicate:
        if not self.operations:
            raise ValueError(f"needs an operator: one of {', '.join(_OPS)}")
        return self

    @cached_property
    def operations(self) -> tuple[tuple[Callable[[Any, Any], bool], Any], ...]:
        """(check, operand) pairs of the operators given, regexes compiled once."""
        named = [(name, getattr(self, name + "_" if name == "in" else name)) for name in _OPS]
        return tuple(
            (_OPS[name], re.compile(operand, re.IGNORECASE) if name == "matches" else operand)
            for name, operand in named
            if operand is not None
        )

    def test(self, value: Any) -> bool:
        """Whether ``value`` passes every operator of this predicate."""
        return all(check(value, operand) for check, operand in self.operations)


# ---------------------------------------------------------------------------------------------
# Leaf conditions
# ---------------------------------------------------------------------------------------------


class TraitCondition(Predicate):
    """``{trait: industry, in: [Software]}``: a contact trait (dotted paths reach nested ones)."""

    trait: str = Field(min_length=1)

    def holds(self, snap: Snapshot) -> bool:
        """Whether the trait passes the predicate."""
        return self.test(lookup(snap.facts.traits, self.trait))

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """Traits only change with new facts, never with time."""
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class ScoreCondition(Predicate):
    """``{score: fit, gte: 60}``: a score; one that was never computed counts as 0."""

    score: str = Field(min_length=1)

    def holds(self, snap: Snapshot) -> bool:
        """Whether the score passes the predicate."""
        return self.test(snap.facts.scores.get(self.score, 0.0))

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """Score decay is the scoring module's timer; here scores are facts."""
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class _RankTest(_Node):
    """Tests a name with a known order (stages, demand states)."""

    eq: str | None = None
    ne: str | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None
    at_least: str | None = None
    at_most: str | None = None

    def names(self) -> set[str]:
        """Every name this test mentions (to check them against an order)."""
        single = {n for n in (self.eq, self.ne, self.at_least, self.at_most) if n is not None}
        return single | set(self.in_ or ()) | set(self.not_in or ())

    def _given(self) -> list[str]:
        fields = ("eq", "ne", "in_", "not_in", "at_least", "at_most", "exists")
        return [f for f in fields if getattr(self, f, None) is not None]

    def test(self, value: str | None, order: Sequence[str]) -> bool:
        """Whether ``value`` passes every given operator; ``order`` ranks names."""
        rank = {name: i for i, name in enumerate(order)}
        here = rank.get(value) if value is not None else None
        checks = (
            self.eq is None or value == self.eq,
            self.ne is None or value != self.ne,
            self.in_ is None or value in self.in_,
            self.not_in is None or value not in self.not_in,
            self.at_least is None or _at_least(here, rank.get(self.at_least)),
            self.at_most is None or _at_least(rank.get(self.at_most), here),
        )
        return all(checks)


def _at_least(rank: int | None, floor: int | None) -> bool:
    return rank is not None and floor is not None and rank >= floor


class StageTest(_RankTest):
    """``{at_least: MQL}``, ``{in: [SAL, SQL]}``...; names are checked against STAGE_ORDER."""

    @model_validator(mode="after")
    def _known_stages(self) -> StageTest:
        if not self._given():
            raise ValueError("needs an operator: one of eq, ne, in, not_in, at_least, at_most")
        unknown = sorted(self.names() - set(STAGE_ORDER))
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r} (stages: {', '.join(STAGE_ORDER)})")
        return self

    @field_validator("eq", "ne", "at_least", "at_most", mode="before")
    @classmethod
    def _canonical(cls, name: Any) -> Any:
        return _canonical_stage(name)

    @field_validator("in_", "not_in", mode="before")
    @classmethod
    def _canonical_all(cls, names: Any) -> Any:
        if isinstance(names, list | tuple):
            return tuple(_canonical_stage(n) for n in names)
        return names


def _canonical_stage(name: Any) -> Any:
    """``mql`` and ``MQL`` mean the same stage; YAML authors should not have to care."""
    if isinstance(name, str):
        for stage in STAGE_ORDER:
            if stage.casefold() == name.strip().casefold():
                return stage
    return name


class StageCondition(_Node):
    """``{stage: {at_least: MQL}}``: the lifecycle stage."""

    stage: StageTest

    def holds(self, snap: Snapshot) -> bool:
        """Whether the contact's stage passes."""
        return self.stage.test(snap.facts.stage, STAGE_ORDER)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """Stages move with sales activity, not with time."""
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class DemandStateTest(_RankTest):
    """Like StageTest plus ``exists``; ``at_least``/``at_most`` use the snapshot's order."""

    exists: bool | None = None

    @model_validator(mode="after")
    def _has_an_operator(self) -> DemandStateTest:
        if not self._given():
            raise ValueError(
                "needs an operator: one of eq, ne, in, not_in, at_least, at_most, exists"
            )
        return self

    def test(self, value: str | None, order: Sequence[str]) -> bool:
        """As for stages; ``exists`` asks whether any state was reached at all."""
        if self.exists is not None and (value is not None) != self.exists:
            return False
        return super().test(value, order)


class DemandStateCondition(_Node):
    """``{demand_state: {at_least: technical-validating}}``: the current buying state."""

    demand_state: DemandStateTest

    def holds(self, snap: Snapshot) -> bool:
        """Whether the contact's demand state passes (ranked by the snapshot's order)."""
        return self.demand_state.test(snap.facts.demand_state, snap.demand_state_order)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """The state is recomputed by its own conditions; here it is a fact."""
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class ListCondition(_Node):
    """``{list: Pricing Engaged ICP}``: membership in a list (static, suppression or dynamic)."""

    list_: str = Field(alias="list", min_length=1)

    def holds(self, snap: Snapshot) -> bool:
        """Whether the contact is on the list in this snapshot."""
        return self.list_ in snap.lists

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """A list's own expiry is accounted for by the list; here membership is a fact."""
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class EventCondition(_Node):
    """``{event: X, where: {...}, at_least: 3, at_most: 5, within: 7d}``: behaviour counts.

    Counts events named ``event`` whose properties pass ``where``, that happened at or before
    now and, with ``within``, less than ``within`` ago: an event at ``t`` counts during
    ``[t, t + within)``. Without ``at_least``/``at_most`` the count must be at least 1; with
    only ``at_most`` it may be 0 (``at_most: 0`` means "did not happen").
    """

    event: str = Field(min_length=1)
    where: dict[str, Predicate] = Field(default_factory=dict)
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    within: Duration | None = None

    @model_validator(mode="after")
    def _sane_bounds(self) -> EventCondition:
        if self.at_most is not None and self.at_most < self.minimum:
            raise ValueError(f"at_most ({self.at_most}) is below at_least ({self.minimum})")
        return self

    @property
    def minimum(self) -> int:
        """The effective lower bound on the count."""
        if self.at_least is not None:
            return self.at_least
        return 0 if self.at_most is not None else 1

    def _accepts(self, count: int) -> bool:
        return count >= self.minimum and (self.at_most is None or count <= self.at_most)

    def _passes_where(self, event: EventRecord) -> bool:
        return not self.where or all(
            p.test(lookup(event.properties, k)) for k, p in self.where.items()
        )

    def _recent(self, snap: Snapshot) -> Iterator[EventRecord]:
        """Matching events that may count now or later, newest first (stops at the window)."""
        for event in reversed(snap.events_named(self.event)):
            if self.within is not None and event.at + self.within <= snap.now:
                return
            if self._passes_where(event):
                yield event

    def holds(self, snap: Snapshot) -> bool:
        """Whether the count now is within bounds (stops counting once it is decided)."""
        decided_at = self.minimum if self.at_most is None else self.at_most + 1
        count = 0
        for event in self._recent(snap):
            if count >= decided_at:
                break
            count += event.at <= snap.now
        return self._accepts(count)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """The exact first moment after now when the result flips with no new events."""
        count, deltas = 0, dict[datetime, int]()
        for event in self._recent(snap):
            if event.at > snap.now:
                deltas[event.at] = deltas.get(event.at, 0) + 1
            else:
                count += 1
            if self.within is not None:
                leaves = event.at + self.within
                deltas[leaves] = deltas.get(leaves, 0) - 1
        return self._first_flip(count, deltas)

    def _first_flip(self, count: int, deltas: Mapping[datetime, int]) -> datetime | None:
        before = self._accepts(count)
        for moment in sorted(deltas):
            count += deltas[moment]
            if self._accepts(count) != before:
                return moment
        return None

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


# ---------------------------------------------------------------------------------------------
# Combinators
# ---------------------------------------------------------------------------------------------


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _latest_unless_never(moments: Iterable[datetime | None]) -> datetime | None:
    collected = list(moments)
    if not collected or any(m is None for m in collected):
        return None
    return max(m for m in collected if m is not None)


def _combined_bound(
    children: Sequence[Condition], snap: Snapshot, decisive: bool
) -> datetime | None:
    """A lower bound on when ``all`` (decisive=False) / ``any`` (decisive=True) can flip.

    If no child holds the decisive value, the first child to flip decides it. Otherwise the
    result cannot flip before every deciding child has flipped (the latest of their flips), and
    never if one of them never flips. That latest flip may not yet be a real change (another
    child may have moved meanwhile), which is why ``next_change_at`` re-checks and continues.
    """
    deciders = [child for child in children if child.holds(snap) == decisive]
    if not deciders:
        return _earliest(child.change_bound(snap) for child in children)
    return _latest_unless_never(child.change_bound(snap) for child in deciders)


class AllCondition(_Node):
    """``{all: [...]}``: every condition holds (an empty list holds)."""

    all_: tuple[Condition, ...] = Field(alias="all")

    def holds(self, snap: Snapshot) -> bool:
        """Whether every child holds."""
        return all(child.holds(snap) for child in self.all_)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """See ``_combined_bound``."""
        return _combined_bound(self.all_, snap, decisive=False)

    def children(self) -> tuple[Condition, ...]:
        """The combined conditions."""
        return self.all_


class AnyCondition(_Node):
    """``{any: [...]}``: at least one condition holds (an empty list does not)."""

    any_: tuple[Condition, ...] = Field(alias="any")

    def holds(self, snap: Snapshot) -> bool:
        """Whether some child holds."""
        return any(child.holds(snap) for child in self.any_)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """See ``_combined_bound``."""
        return _combined_bound(self.any_, snap, decisive=True)

    def children(self) -> tuple[Condition, ...]:
        """The combined conditions."""
        return self.any_


class NotCondition(_Node):
    """``{not: {...}}``: the condition does not hold."""

    not_: Condition = Field(alias="not")

    def holds(self, snap: Snapshot) -> bool:
        """Whether the child does not hold."""
        return not self.not_.holds(snap)

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """Flips exactly when the child flips."""
        return self.not_.change_bound(snap)

    def children(self) -> tuple[Condition, ...]:
        """The negated condition."""
        return (self.not_,)


# ---------------------------------------------------------------------------------------------
# The Condition union and parsing
# ---------------------------------------------------------------------------------------------

_TAG_PREFIX = "cond:"
_KINDS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        "trait": TraitCondition,
        "score": ScoreCondition,
        "stage": StageCondition,
        "list": ListCondition,
        "demand_state": DemandStateCondition,
        "event": EventCondition,
        "all": AllCondition,
        "any": AnyCondition,
        "not": NotCondition,
    }
)
_KIND_ERROR = "a condition needs exactly one of: " + ", ".join(_KINDS)


def _kind_of(data: Any) -> str | None:
    """Which node a YAML mapping is, from the one key that names it."""
    if isinstance(data, Mapping):
        found = [kind for kind in _KINDS if kind in data]
        return _TAG_PREFIX + found[0] if len(found) == 1 else None
    for kind, model in _KINDS.items():
        if type(data) is model:
            return _TAG_PREFIX + kind
    return None


Condition = Annotated[
    Union[  # noqa: UP007  # Tag annotations need the explicit Union form
        Annotated[TraitCondition, Tag("cond:trait")],
        Annotated[ScoreCondition, Tag("cond:score")],
        Annotated[StageCondition, Tag("cond:stage")],
        Annotated[ListCondition, Tag("cond:list")],
        Annotated[DemandStateCondition, Tag("cond:demand_state")],
        Annotated[EventCondition, Tag("cond:event")],
        Annotated[AllCondition, Tag("cond:all")],
        Annotated[AnyCondition, Tag("cond:any")],
        Annotated[NotCondition, Tag("cond:not")],
    ],
    Discriminator(_kind_of, custom_error_type="condition_kind", custom_error_message=_KIND_ERROR),
]
"""Any condition node; parse with ``parse_condition`` or use as a pydantic field type."""

for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()

_ADAPTER: TypeAdapter[Condition] = TypeAdapter(Condition)


def _path(loc: Sequence[int | str]) -> str:
    """``('lists', 2, 'when', 'cond:any', 'any', 0)`` as ``lists[2].when.any[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(_TAG_PREFIX):
            text += f".{part}" if text else part
    return text


def _join(where: str, path: str) -> str:
    if not where or not path:
        return where or path or "(top)"
    if ": " not in where:
        return f"{where}: {path}"
    return where + path if path.startswith("[") else f"{where}.{path}"


def _message(error: Mapping[str, Any]) -> str:
    kind, given = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("tuple_type", "list_type"):
        return f"should be a list (got {type(given).__name__})"
    if kind == "condition_kind" and isinstance(given, Mapping):
        return f"{error['msg']} (got keys: {', '.join(map(str, given)) or 'none'})"
    if given is None or isinstance(given, str | int | float | bool):
        return f"{error['msg']} (got {given!r})"
    return str(error["msg"])


def config_error(exc: ValidationError, where: str = "") -> ConfigError:
    """A ConfigError with one line per problem: ``file: a.b[2].c: what is wrong``.

    ``where`` is a file name (``lists.yaml``) or a file and path prefix
    (``lists.yaml: lists[2].when``). Union tags never appear in the path.
    """
    lines: list[str] = []
    for error in exc.errors():
        line = f"{_join(where, _path(error['loc']))}: {_message(error)}"
        if line not in lines:
            lines.append(line)
    return ConfigError("\n".join(lines))


def parse_condition(data: object, *, where: str = "") -> Condition:
    """Parse a YAML/dict condition; ConfigError names the bad field's path after ``where``."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise config_error(exc, where) from exc


def condition_json_schema() -> dict[str, Any]:
    """JSON Schema of one condition, for editors and for embedding in file schemas."""
    return _ADAPTER.json_schema(by_alias=True)


# ---------------------------------------------------------------------------------------------
# Evaluation and look-ahead
# ---------------------------------------------------------------------------------------------


def evaluate(condition: Condition, facts: ContactFacts | Snapshot) -> bool:
    """Whether ``condition`` holds for ``facts`` at ``facts.now``."""
    return condition.holds(_snapshot(facts))


def next_outcome_change(
    conditions: Sequence[Condition],
    snapshot: Snapshot,
    outcome: Callable[[Snapshot], object],
) -> datetime | None:
    """The first moment after ``snapshot.now`` when ``outcome`` changes with no new events.

    ``outcome`` must depend on the snapshot only through ``conditions`` (e.g. "the furthest
    demand state that holds"). Each step jumps to a lower bound on the next flip of any
    condition and checks whether the outcome really changed there, so the answer is exact and
    the number of steps is bounded by the number of window edges.
    """
    start, view = outcome(snapshot), snapshot
    while True:
        bound = _earliest(condition.change_bound(view) for condition in conditions)
        if bound is None:
            return None
        view = snapshot.at(bound)
        if outcome(view) != start:
            return bound


def next_change_at(condition: Condition, facts: ContactFacts | Snapshot) -> datetime | None:
    """The exact moment after ``facts.now`` when ``evaluate`` flips with no new events.

    None means it never changes by time alone. Traits, scores, stage, list memberships and
    the demand state are held constant: they change with new facts, which trigger their own
    re-evaluation. A durable timer set to this moment flips membership exactly on time.
    """
    snap = _snapshot(facts)
    return next_outcome_change((condition,), snap, condition.holds)


def iter_nodes(condition: Condition) -> Iterator[Condition]:
    """Every node of the condition tree, depth first, the root first."""
    yield condition
    for child in condition.children():
        yield from iter_nodes(child)


def referenced_lists(condition: Condition) -> set[str]:
    """Names of the lists the condition looks at (for dependency ordering and checks)."""
    return {node.list_ for node in iter_nodes(condition) if isinstance(node, ListCondition)}


def referenced_demand_states(condition: Condition) -> set[str]:
    """Demand-state names the condition mentions (to check them against a configured order)."""
    names: set[str] = set()
    for node in iter_nodes(condition):
        if isinstance(node, DemandStateCondition):
            names |= node.demand_state.names()
    return names
