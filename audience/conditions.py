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
    {quiet_for: 30d, ignoring: [Email Delivered]}     # no event of any kind for 30 days
    {account: {trait: industry, in: [Software]}}      # the contact's account (docs/accounts.md):
    {account: {engaged_contacts: {at_least: 3, within: 30d}}}   # also score, committee_has,
    {account: {committee_has: economic_buyer}}        # priority, member
    {all: [...]}   {any: [...]}   {not: {...}}

``demand_state: {at_least/at_most}`` needs the ordered state names. They come from the
``Snapshot`` being evaluated (``Snapshot.of(facts, demand_state_order=...)``); a plain
``ContactFacts`` is evaluated with the order of the shipped ``config/demand_states.yaml``
(SPEC R1). Stages are ranked by ``lifecycle.stages.Stage``; durations are
``revops.durations.Duration``.

Equality (``eq``, ``ne``, ``in``, ``not_in``, ``contains`` on lists) is one definition,
``operand_forms`` and ``value_form``. The rules engine compiles journey trigger filters with
the same two functions, so a trigger and a condition never disagree.

This module is imported by Temporal workflow code, so it must stay deterministic: no clocks
(the time is always ``facts.now``), no randomness, no module-level mutable state, and no I/O
but the one read of the shipped demand-state order (once per process, on first use).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, cached_property
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from audience.facts import COMMITTEE_ROLES, AccountFacts, ContactFacts, EventRecord
from lifecycle.stages import STAGES
from revops.durations import Duration
from revops.errors import ConfigError
from revops.strict import StrictModel, one_key_discriminator
from revops.yamlio import read_mapping

__all__ = [
    "SHIPPED_DEMAND_STATES",
    "AccountCondition",
    "AccountTest",
    "AllCondition",
    "AnyCondition",
    "Condition",
    "DemandStateCondition",
    "DemandStateTest",
    "EngagedContactsTest",
    "EqualityKind",
    "EventCondition",
    "Form",
    "ListCondition",
    "NotCondition",
    "Predicate",
    "QuietCondition",
    "ScoreCondition",
    "Snapshot",
    "StageCondition",
    "StageTest",
    "TraitCondition",
    "condition_json_schema",
    "config_error",
    "default_demand_state_order",
    "evaluate",
    "iter_nodes",
    "lookup",
    "next_change_at",
    "next_outcome_change",
    "operand_forms",
    "parse_condition",
    "referenced_demand_states",
    "referenced_lists",
    "value_form",
]

SHIPPED_DEMAND_STATES = Path(__file__).resolve().parent.parent / "config" / "demand_states.yaml"
"""The shipped demand states (SPEC R1): their order ranks states when a snapshot names none."""


@cache
def default_demand_state_order() -> tuple[str, ...]:
    """The state names of ``SHIPPED_DEMAND_STATES``, earliest first.

    Read once per process on first use (never at import): the file ships with the code, so
    this is as deterministic as a constant. ``audience.demand_states`` validates the file.
    """
    states = read_mapping(SHIPPED_DEMAND_STATES, "`version` and `states`").get("states")
    if not isinstance(states, list) or not all(isinstance(s, Mapping) for s in states):
        raise ConfigError(f"{SHIPPED_DEMAND_STATES}: states: should be a list of states")
    return tuple(str(state.get("name")) for state in states)


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
        demand_state_order: Sequence[str] | None = None,
    ) -> Snapshot:
        """Index ``facts`` for evaluation; ``demand_state_order`` ranks demand-state names
        (the shipped order when None)."""
        grouped: dict[str, list[EventRecord]] = {}
        for event in sorted(facts.events, key=attrgetter("at")):
            grouped.setdefault(event.name, []).append(event)
        return cls(
            facts=facts,
            now=facts.now,
            lists=facts.lists,
            demand_state_order=tuple(
                default_demand_state_order() if demand_state_order is None else demand_state_order
            ),
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

    def last_event_at(self, ignoring: AbstractSet[str] = frozenset()) -> datetime | None:
        """When the latest event up to now happened, leaving out names in ``ignoring``."""
        moments = (
            events[index - 1].at
            for name, events in self.events_by_name.items()
            if name not in ignoring
            and (index := bisect_right(events, self.now, key=attrgetter("at"))) > 0
        )
        return max(moments, default=None)


def _snapshot(facts: ContactFacts | Snapshot) -> Snapshot:
    return facts if isinstance(facts, Snapshot) else Snapshot.of(facts)


# ---------------------------------------------------------------------------------------------
# Value tests shared by traits, scores and event properties
# ---------------------------------------------------------------------------------------------

Scalar = Union[bool, int, float, str]  # noqa: UP007  # bool first: pydantic keeps True a bool
Number = Union[int, float, str]  # noqa: UP007  # str so ISO dates can be compared too


_NUMBER_STARTS = frozenset("+-.iInN")  # what float() accepts first, besides digits (inf, nan)


def _missing(value: Any) -> bool:
    """None and "" both mean "we do not know": CRMs send either for an empty field."""
    return value is None or (isinstance(value, str) and not value.strip())


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or not (text[0].isdigit() or text[0] in _NUMBER_STARTS):
            return None  # most text is words: skip float()'s exception, same answer
        try:
            return float(text)
        except ValueError:
            return None
    return None


EqualityKind = Literal["bool", "number", "text"]
"""How an ``eq``/``in`` operand compares: as a flag, as a number, or as text."""

Form = bool | float | str
"""A value as an operand of one kind compares it."""


def operand_forms(operand: Any) -> tuple[EqualityKind, tuple[Form, ...]]:
    """An operand's kind, and the forms a fact value may take to equal it.

    ``true``/``false`` are flags and numbers are numbers; text equals text ignoring case and,
    when it reads as a number, also a number fact of that value (``"250"`` equals ``250``).
    """
    if isinstance(operand, bool):
        return "bool", (operand,)
    if isinstance(operand, int | float):
        return "number", (float(operand),)
    text = str(operand)
    number = _as_number(text)
    return "text", (text.casefold(),) if number is None else (text.casefold(), number)


def value_form(value: Any, kind: EqualityKind) -> Form | None:
    """A fact value in the form operands of ``kind`` compare with it; None equals nothing.

    Together with ``operand_forms`` this is the one definition of equality (``eq``, ``ne``,
    ``in``, ``not_in``, ``contains`` on lists, and the rules engine's trigger filters): a value
    equals an operand when its form is one of the operand's forms. Forms send ``"250"`` for a
    number and ``"true"`` for a flag, and CRMs differ in capitalisation, so a flag operand
    equals booleans and the words true/false, a number operand equals numbers and numeric text,
    a text operand equals text ignoring case and numbers. A missing value (absent, None, "")
    equals nothing.
    """
    if _missing(value):
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        word = value.strip().casefold() if isinstance(value, str) else None
        return word == "true" if word in ("true", "false") else None
    if kind == "number":
        return _as_number(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return value.casefold() if isinstance(value, str) else None


def _comparable(value: Any, operand: Any) -> tuple[Any, Any] | None:
    """Bring a fact and an operand to one type for ordering, or None when they cannot be.

    Numbers compare numerically even when one side is a numeric string (forms send ``"250"``);
    strings (ISO dates among them) compare case-insensitively.
    """
    if _missing(value):
        return None
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
    return _is(value, operand_forms(operand))


_Forms = tuple[EqualityKind, tuple[Form, ...]]


def _is(value: Any, operand: _Forms) -> bool:
    """``eq``: ``value`` equals the operand given by its forms (worked out once, at parse)."""
    kind, forms = operand
    form = value_form(value, kind)
    return form is not None and form in forms


def _one_of(value: Any, operands: tuple[_Forms, ...]) -> bool:
    """``in``: some element of ``value`` equals one of the operands."""
    return any(_is(item, operand) for item in _items(value) for operand in operands)


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
        "eq": _is,
        "ne": lambda value, key: not _is(value, key),
        "in": _one_of,
        "not_in": lambda value, keys: not _one_of(value, keys),
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


def _prepared(name: str, operand: Any) -> Any:
    """An operand as its check takes it: equality operands keyed, a regex compiled."""
    if name in ("eq", "ne"):
        return operand_forms(operand)
    if name in ("in", "not_in"):
        return tuple(operand_forms(item) for item in operand)
    if name == "matches":
        return re.compile(operand, re.IGNORECASE)
    return operand


class Predicate(StrictModel):
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
            (_OPS[name], _prepared(name, operand)) for name, operand in named if operand is not None
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


class _RankTest(StrictModel):
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
    """``{at_least: MQL}``, ``{in: [SAL, SQL]}``...; names are the lifecycle ``STAGES``."""

    @model_validator(mode="after")
    def _known_stages(self) -> StageTest:
        if not self._given():
            raise ValueError("needs an operator: one of eq, ne, in, not_in, at_least, at_most")
        unknown = sorted(self.names() - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r} (stages: {', '.join(STAGES)})")
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
        for stage in STAGES:
            if stage.casefold() == name.strip().casefold():
                return stage.value
    return name


class StageCondition(StrictModel):
    """``{stage: {at_least: MQL}}``: the lifecycle stage."""

    stage: StageTest

    def holds(self, snap: Snapshot) -> bool:
        """Whether the contact's stage passes."""
        return self.stage.test(snap.facts.stage, STAGES)

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


class DemandStateCondition(StrictModel):
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


class ListCondition(StrictModel):
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


class EventCondition(StrictModel):
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


class QuietCondition(StrictModel):
    """``{quiet_for: 30d}``: the contact's latest event is at least ``quiet_for`` old.

    Any event counts (a page view, a demo request, a sales call), except names listed in
    ``ignoring`` (receipts such as ``Email Delivered`` that say nothing about the contact).
    A contact whose only event came a minute ago is not quiet; one with no event in its kept
    history is. Flips exactly ``quiet_for`` after the latest counted event.
    """

    quiet_for: Duration
    ignoring: tuple[str, ...] = ()

    def holds(self, snap: Snapshot) -> bool:
        """Whether nothing counted happened in the last ``quiet_for``."""
        latest = snap.last_event_at(frozenset(self.ignoring))
        return latest is None or latest + self.quiet_for <= snap.now

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """When quiet: the next counted event (one stamped after now). Otherwise the end of
        the run of counted events covering now: ``quiet_for`` after its last one."""
        ignored = frozenset(self.ignoring)
        times = sorted(
            event.at
            for name, events in snap.events_by_name.items()
            if name not in ignored
            for event in events
        )
        if self.holds(snap):
            return next((moment for moment in times if moment > snap.now), None)
        end: datetime | None = None
        for moment in times:
            if moment + self.quiet_for <= snap.now:
                continue
            if end is not None and moment > end:
                break
            end = moment + self.quiet_for if end is None else max(end, moment + self.quiet_for)
        return end

    def children(self) -> tuple[Condition, ...]:
        """Leaves have none."""
        return ()


class EngagedContactsTest(StrictModel):
    """``{at_least: 3, within: 30d}``: how many members engaged (latest engagement per member).

    Bounds as for events: without ``at_least``/``at_most`` at least one; ``within`` counts a
    member whose latest engagement is less than ``within`` old.
    """

    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    within: Duration | None = None

    @property
    def minimum(self) -> int:
        """The effective lower bound on the count."""
        if self.at_least is not None:
            return self.at_least
        return 0 if self.at_most is not None else 1

    def accepts(self, count: int) -> bool:
        """Whether ``count`` engaged members pass the bounds."""
        return count >= self.minimum and (self.at_most is None or count <= self.at_most)

    def counted(self, at: datetime, now: datetime) -> bool:
        """Whether an engagement at ``at`` counts at ``now``."""
        return at <= now and (self.within is None or at + self.within > now)


_ACCOUNT_SUBJECTS = ("trait", "score", "engaged_contacts", "committee_has", "priority", "member")
_PREDICATE_KEYS = frozenset(
    {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "contains", "matches"}
    | {"exists", "domain_in"}
)


class AccountTest(StrictModel):
    """What an ``account`` condition asks: exactly one of ``trait`` or ``score`` (with
    predicate operators beside it), ``engaged_contacts``, ``committee_has``, ``priority`` or
    ``member`` (whether the contact belongs to an account at all)."""

    trait: str | None = Field(default=None, min_length=1)
    score: str | None = Field(default=None, min_length=1)
    engaged_contacts: EngagedContactsTest | None = None
    committee_has: str | None = None
    priority: str | None = None
    member: bool | None = None
    test: Predicate | None = Field(default=None, description="The operators of trait/score.")

    @model_validator(mode="before")
    @classmethod
    def _operators_beside_the_subject(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("trait" in data or "score" in data):
            operators = {k: v for k, v in data.items() if k in _PREDICATE_KEYS}
            if operators:
                data = {k: v for k, v in data.items() if k not in _PREDICATE_KEYS}
                data["test"] = operators
        return data

    @model_validator(mode="after")
    def _one_subject(self) -> AccountTest:
        given = [name for name in _ACCOUNT_SUBJECTS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "an account condition needs exactly one of: " + ", ".join(_ACCOUNT_SUBJECTS)
            )
        if given[0] in ("trait", "score") and self.test is None:
            raise ValueError(f"account {given[0]} needs an operator: one of {', '.join(_OPS)}")
        if self.committee_has is not None and self.committee_has not in COMMITTEE_ROLES:
            raise ValueError(
                f"unknown committee role {self.committee_has!r}"
                f" (roles: {', '.join(COMMITTEE_ROLES)})"
            )
        return self


def _account_value(account: AccountFacts, trait: str) -> Any:
    """An account trait; ``name``, ``domain`` and ``owner`` are traits too."""
    found = lookup(account.traits, trait)
    if found is None and trait in ("name", "domain", "owner"):
        return getattr(account, trait)
    return found


class AccountCondition(StrictModel):
    """``{account: {trait: industry, in: [...]}}``, ``{account: {engaged_contacts: {at_least:
    3, within: 30d}}}``, ``{account: {committee_has: economic_buyer}}``, ``{account: {score:
    engagement, gte: 70}}``: the contact's account, as its account workflow last told it.

    A contact without an account passes only ``{account: {member: false}}``.
    """

    account: AccountTest

    def holds(self, snap: Snapshot) -> bool:
        """Whether the contact's account passes the test."""
        test, account = self.account, snap.facts.account
        if test.member is not None:
            return (account is not None) == test.member
        if account is None:
            return False
        if test.trait is not None and test.test is not None:
            return test.test.test(_account_value(account, test.trait))
        if test.score is not None and test.test is not None:
            return test.test.test(account.scores.get(test.score, 0.0))
        if test.committee_has is not None:
            return test.committee_has in account.committee
        if test.priority is not None:
            return account.priority.casefold() == test.priority.casefold()
        assert test.engaged_contacts is not None
        engaged = test.engaged_contacts
        return engaged.accepts(sum(engaged.counted(m.at, snap.now) for m in account.engaged))

    def change_bound(self, snap: Snapshot) -> datetime | None:
        """Only an engagement window moves with time: the first moment the count flips."""
        engaged, account = self.account.engaged_contacts, snap.facts.account
        if engaged is None or account is None:
            return None
        count, deltas = 0, dict[datetime, int]()
        for member in account.engaged:
            if member.at > snap.now:
                deltas[member.at] = deltas.get(member.at, 0) + 1
            elif engaged.counted(member.at, snap.now):
                count += 1
            else:
                continue
            if engaged.within is not None:
                leaves = member.at + engaged.within
                deltas[leaves] = deltas.get(leaves, 0) - 1
        before = engaged.accepts(count)
        for moment in sorted(deltas):
            count += deltas[moment]
            if engaged.accepts(count) != before:
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


class AllCondition(StrictModel):
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


class AnyCondition(StrictModel):
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


class NotCondition(StrictModel):
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
        "quiet_for": QuietCondition,
        "account": AccountCondition,
        "all": AllCondition,
        "any": AnyCondition,
        "not": NotCondition,
    }
)
_KIND_ERROR = "a condition needs exactly one of: " + ", ".join(_KINDS)


Condition = Annotated[
    Union[  # noqa: UP007  # Tag annotations need the explicit Union form
        Annotated[TraitCondition, Tag("cond:trait")],
        Annotated[ScoreCondition, Tag("cond:score")],
        Annotated[StageCondition, Tag("cond:stage")],
        Annotated[ListCondition, Tag("cond:list")],
        Annotated[DemandStateCondition, Tag("cond:demand_state")],
        Annotated[EventCondition, Tag("cond:event")],
        Annotated[QuietCondition, Tag("cond:quiet_for")],
        Annotated[AccountCondition, Tag("cond:account")],
        Annotated[AllCondition, Tag("cond:all")],
        Annotated[AnyCondition, Tag("cond:any")],
        Annotated[NotCondition, Tag("cond:not")],
    ],
    one_key_discriminator(_TAG_PREFIX, _KINDS, error_type="condition_kind", message=_KIND_ERROR),
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
