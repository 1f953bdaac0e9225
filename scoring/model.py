"""Lead scoring: fit and engagement scores, decay, MQL gates, and why a contact scored so.

Owns the scoring model (``config/scoring.yaml``, versioned), the computation of a contact's
``ScoreCard`` from one ``ContactFacts`` snapshot, the MQL/SQL gate decision and the plain-English
explanation sales reps and support read (``revops contacts why``).

Two scores, never blended into one (SPEC R2): **fit** says who the contact is (trait rules and
fit-side negatives), **engagement** what they did (event rules, decayed by age, plus
engagement-side negatives). Each is clamped to 0..100. The combined gate reads the engagement
earned in the last ``engagement_window`` (30 days by default), so an old burst of activity does
not qualify a lead today.

The contact workflow calls ``compute_scores`` and ``evaluate_gate`` inside workflow code, in the
same workflow task as the qualifying event, so everything here is deterministic: no I/O (the
definitions service reads the file or the deployed version), no clocks (the time is always
``facts.now``), no randomness and no module-level mutable state. ``next_decay_at`` is the exact
moment the card next changes with no new events; the workflow sleeps until then, which is how
scores drop on day 60 and day 120 on time rather than at the next event.

Segments are lists: a segment gate names a list (``config/lists.yaml``) and applies when the
contact is a member (``facts.lists``); the first matching segment wins.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from audience.conditions import (
    AccountCondition,
    AllCondition,
    AnyCondition,
    Condition,
    ListCondition,
    NotCondition,
    Predicate,
    Snapshot,
    TraitCondition,
    config_error,
    evaluate,
    iter_nodes,
    lookup,
    referenced_lists,
)
from audience.facts import ContactFacts, EventRecord
from revops.durations import Duration
from revops.errors import ConfigError
from revops.strict import StrictModel

__all__ = [
    "CapWindow",
    "CompiledModel",
    "Contribution",
    "DecayStep",
    "EngagementRule",
    "FitRule",
    "Gate",
    "GateResult",
    "Gates",
    "Level",
    "NegativeRule",
    "ScoreCard",
    "ScoringModel",
    "SegmentGate",
    "clamp",
    "compute_scores",
    "evaluate_gate",
    "explain",
    "gate_level",
    "parse_scoring_model",
    "select_gate",
]

Level = Literal["MQL", "SQL"]
"""What a gate can qualify a contact as."""

SCORE_MAX = 100.0
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)

# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------


class _Rule(StrictModel):
    """A named rule; ``label`` is how a sales rep reads it ("Viewed the pricing page")."""

    name: str = Field(min_length=1)
    label: str | None = None

    @property
    def text(self) -> str:
        """The label, else the rule name."""
        return self.label or self.name


_FIT_NODES = (TraitCondition, ListCondition, AllCondition, AnyCondition, NotCondition)


def _firmographic(node: AccountCondition) -> bool:
    """An account's traits, committee and membership are who the contact is, too (its
    engagement, scores and priority are behaviour)."""
    test = node.account
    return test.trait is not None or test.committee_has is not None or test.member is not None


def _who_the_contact_is(condition: Condition | None) -> Condition | None:
    """Fit conditions may look at traits and lists only, never at events, scores or stage.

    Fit is who the contact is (its account's traits and committee included). Keeping
    behaviours out keeps the two scores separate (SPEC R2),
    makes fit independent of time (so only engagement decays) and lets the backtest replay fit
    from traits alone.
    """
    for node in iter_nodes(condition) if condition is not None else ():
        if isinstance(node, AccountCondition) and _firmographic(node):
            continue
        if not isinstance(node, _FIT_NODES):
            kind = type(node).__name__.removesuffix("Condition").lower()
            raise ValueError(
                f"fit conditions look at traits and lists only (got a {kind} condition); "
                "put behaviours in `engagement` rules"
            )
    return condition


class FitRule(_Rule):
    """``points`` when the contact's traits match ``when`` (once, not per event)."""

    when: Condition
    points: int

    @model_validator(mode="after")
    def _traits_only(self) -> FitRule:
        _who_the_contact_is(self.when)
        return self


class CapWindow(StrictModel):
    """At most ``count`` events of a rule count within any ``within`` (e.g. 3 opens per 7 days)."""

    count: int = Field(ge=1)
    within: Duration


class EngagementRule(_Rule):
    """``points`` for each ``event`` whose properties pass ``where``; decays with age."""

    event: str = Field(min_length=1)
    where: dict[str, Predicate] = Field(default_factory=dict)
    points: int
    max_per_window: CapWindow | None = None
    decays: bool = True

    def matches(self, properties: Mapping[str, Any]) -> bool:
        """Whether an event's properties pass every ``where`` predicate."""
        return all(test.test(lookup(properties, key)) for key, test in self.where.items())


class NegativeRule(_Rule):
    """A disqualifying signal: a trait (``when``) or any of ``events``; applied once.

    ``applies_to`` says which score it lowers. Negatives do not decay: an unsubscribe or a spam
    complaint stays true until the facts change. ``disqualifies`` additionally keeps the contact
    from qualifying at all (hand-raisers included), e.g. competitors.
    """

    applies_to: Literal["fit", "engagement"]
    when: Condition | None = None
    events: tuple[str, ...] = ()
    points: int = Field(le=0)
    disqualifies: bool = False

    @model_validator(mode="after")
    def _one_signal(self) -> NegativeRule:
        if (self.when is None) == (not self.events):
            raise ValueError("a negative rule needs exactly one of `when` (traits) or `events`")
        _who_the_contact_is(self.when)
        return self


class DecayStep(StrictModel):
    """Behaviours at least ``older_than`` old count ``factor`` times their points."""

    older_than: Duration
    factor: float = Field(ge=0.0, le=1.0)


_COMBINED_ONLY = frozenset({"fit_above", "engagement_above"})
_SINGLE_ONLY = frozenset({"mql_at", "sql_at"})


class Gate(StrictModel):
    """When a contact qualifies, in one of two modes.

    ``combined`` (the default, seed 002): MQL when fit > ``fit_above`` AND the engagement of the
    recent window > ``engagement_above``. ``single`` (seed 001): one blended total, fit +
    engagement (0..200); >= ``mql_at`` is MQL, >= ``sql_at`` is SQL. Changing a field of the
    other mode is an error, so a gate never silently ignores a threshold someone wrote down
    (the defaults are accepted, so a serialised gate reads back).
    """

    mode: Literal["combined", "single"] = "combined"
    fit_above: float = 60
    engagement_above: float = 40
    mql_at: float = 65
    sql_at: float | None = 85

    @model_validator(mode="after")
    def _fields_fit_mode(self) -> Gate:
        foreign = _SINGLE_ONLY if self.mode == "combined" else _COMBINED_ONLY
        fields = type(self).model_fields
        misplaced = sorted(f for f in foreign if getattr(self, f) != fields[f].default)
        if misplaced:
            raise ValueError(f"{misplaced[0]} does not apply to mode: {self.mode}")
        if self.sql_at is not None and self.sql_at < self.mql_at:
            raise ValueError(f"sql_at ({self.sql_at:g}) is below mql_at ({self.mql_at:g})")
        return self


class SegmentGate(StrictModel):
    """Contacts on ``list`` are judged by ``gate``."""

    list_: str = Field(alias="list", min_length=1)
    gate: Gate


class Gates(StrictModel):
    """The default gate and per-segment gates, tried in order (first match wins)."""

    default: Gate = Field(default_factory=Gate)
    segments: tuple[SegmentGate, ...] = ()


def _default_decay() -> tuple[DecayStep, ...]:
    return (
        DecayStep(older_than=timedelta(days=60), factor=0.5),
        DecayStep(older_than=timedelta(days=120), factor=0.0),
    )


class ScoringModel(StrictModel):
    """A versioned scoring model (``config/scoring.yaml``). See docs/scoring.md."""

    version: str = Field(min_length=1)
    description: str = ""
    engagement_window: Duration = timedelta(days=30)
    fit: tuple[FitRule, ...] = ()
    engagement: tuple[EngagementRule, ...] = ()
    negative: tuple[NegativeRule, ...] = ()
    decay: tuple[DecayStep, ...] = Field(default_factory=_default_decay)
    gates: Gates = Field(default_factory=Gates)
    hand_raisers: tuple[str, ...] = ("Demo Requested", "Contact Sales Submitted")

    _compiled: CompiledModel | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringModel:
        _check_unique_rule_names(self)
        _check_decay_order(self.decay)
        self._compiled = CompiledModel.build(self)  # eagerly: equal models compare equal
        return self

    @property
    def compiled(self) -> CompiledModel:
        """Lookup tables built once per model (rules by event name, decay segments)."""
        assert self._compiled is not None, "built by the model validator"
        return self._compiled

    @property
    def segment_lists(self) -> tuple[str, ...]:
        """The lists that select a segment gate, in the order they are tried."""
        return tuple(segment.list_ for segment in self.gates.segments)

    @property
    def lists_used(self) -> frozenset[str]:
        """Every list the model reads: segment gates and fit/negative conditions."""
        conditions = [rule.when for rule in self.fit]
        conditions += [rule.when for rule in self.negative if rule.when is not None]
        named = {name for condition in conditions for name in referenced_lists(condition)}
        return frozenset(named | set(self.segment_lists))


def _check_unique_rule_names(model: ScoringModel) -> None:
    seen: dict[str, str] = {}
    sections = (("fit", model.fit), ("engagement", model.engagement), ("negative", model.negative))
    for section, rules in sections:
        for index, rule in enumerate(rules):
            here = f"{section}[{index}]"
            if rule.name in seen:
                raise ValueError(
                    f"{here}.name: duplicate rule name {rule.name!r} (first at {seen[rule.name]})"
                )
            seen[rule.name] = here


def _check_decay_order(steps: Sequence[DecayStep]) -> None:
    for index in range(1, len(steps)):
        before, step = steps[index - 1], steps[index]
        if step.older_than <= before.older_than:
            raise ValueError(f"decay[{index}].older_than must be longer than decay[{index - 1}]'s")
        if step.factor > before.factor:
            raise ValueError(
                f"decay[{index}].factor must not exceed decay[{index - 1}]'s: "
                "older behaviours never count more"
            )


def parse_scoring_model(data: object, *, source: str = "scoring model") -> ScoringModel:
    """Validate a scoring model from parsed YAML; ConfigError names ``source`` and the field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a scoring model is a mapping with `version`, `fit`, ...")
    try:
        return ScoringModel.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source) from exc


# ---------------------------------------------------------------------------------------------
# Precompiled lookups
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """What scoring needs per event, computed once per model.

    Ages are cut into *bands* at every decay boundary and at the engagement window, so inside
    one band a behaviour's factor and "recent" flag are constant. Non-decaying rules use two
    extra bands (recent, older) at factor 1. Scores are sums of whole base points per band
    times the band's factor: ``compute_scores`` and the backtest's incremental replay add up
    the same integers the same way, so they agree exactly. ``exits[band]`` is the age at which
    a behaviour leaves the band and the band it moves to (None: it stays for good).
    """

    rules_by_event: Mapping[str, tuple[tuple[int, EngagementRule], ...]]
    negatives_by_event: Mapping[str, tuple[NegativeRule, ...]]
    trait_negatives: tuple[NegativeRule, ...]
    event_negatives: tuple[NegativeRule, ...]
    window: timedelta
    edges: tuple[timedelta, ...]
    factors: tuple[float, ...]
    recent: tuple[bool, ...]
    exits: tuple[tuple[timedelta, int] | None, ...]
    hand_raisers: frozenset[str]
    labels: Mapping[str, str]

    @classmethod
    def build(cls, model: ScoringModel) -> CompiledModel:
        """Index ``model``'s rules and cut its decay into bands."""
        by_event: dict[str, list[tuple[int, EngagementRule]]] = {}
        for index, rule in enumerate(model.engagement):
            by_event.setdefault(rule.event, []).append((index, rule))
        neg_by_event: dict[str, list[NegativeRule]] = {}
        for negative in model.negative:
            for name in negative.events:
                neg_by_event.setdefault(name, []).append(negative)
        window = model.engagement_window
        edges = tuple(sorted({step.older_than for step in model.decay} | {window}))
        starts = (timedelta(0), *edges)
        steady = len(starts)  # the first of the two bands of non-decaying rules
        exits = [(edge, index + 1) for index, edge in enumerate(edges)]
        return cls(
            rules_by_event=MappingProxyType({k: tuple(v) for k, v in by_event.items()}),
            negatives_by_event=MappingProxyType({k: tuple(v) for k, v in neg_by_event.items()}),
            trait_negatives=tuple(n for n in model.negative if n.when is not None),
            event_negatives=tuple(n for n in model.negative if n.events),
            window=window,
            edges=edges,
            factors=(*(_decay_factor(model.decay, start) for start in starts), 1.0, 1.0),
            recent=(*(start < window for start in starts), True, False),
            exits=(*exits, None, (window, steady + 1), None),
            hand_raisers=frozenset(model.hand_raisers),
            labels=MappingProxyType({r.event: r.text for r in reversed(model.engagement)}),
        )

    @property
    def bands(self) -> int:
        """How many age bands there are (decaying ones, then the two steady ones)."""
        return len(self.factors)

    def band(self, age: timedelta, decays: bool = True) -> int:
        """The band of a behaviour ``age`` old (an age exactly on a boundary is past it)."""
        if decays:
            return bisect_right(self.edges, age)
        steady = len(self.edges) + 1
        return steady if age < self.window else steady + 1

    def totals(self, sums: Sequence[int]) -> tuple[float, float]:
        """(engagement, recent engagement) from whole base points per band, unclamped."""
        engagement = recent = 0.0
        for index, points in enumerate(sums):
            if points:
                value = points * self.factors[index]
                engagement += value
                if self.recent[index]:
                    recent += value
        return engagement, recent

    def label(self, event: str) -> str:
        """How a rep reads ``event`` (the first engagement rule's label, else the name)."""
        return self.labels.get(event, event)


def _decay_factor(steps: Sequence[DecayStep], age: timedelta) -> float:
    factor = 1.0
    for step in steps:
        if age >= step.older_than:
            factor = step.factor
    return factor


def clamp(value: float) -> float:
    """Scores live in 0..100 (SPEC R2: each capped at 100, never below 0)."""
    return min(SCORE_MAX, max(0.0, value))


# ---------------------------------------------------------------------------------------------
# Score cards
# ---------------------------------------------------------------------------------------------


class Contribution(BaseModel):
    """One rule's effect: base points, the decay factor applied, the points that count."""

    model_config = ConfigDict(frozen=True)

    rule: str
    label: str
    kind: Literal["fit", "engagement"]
    base_points: int
    factor: float = 1.0
    points: float
    at: datetime | None = None
    recent: bool = False
    disqualifies: bool = False


class ScoreCard(BaseModel):
    """A contact's scores at ``computed_at`` and everything behind them."""

    model_config = ConfigDict(frozen=True)

    model_version: str
    computed_at: datetime
    engagement_window: Duration
    fit: float
    engagement: float
    engagement_recent: float
    contributions: tuple[Contribution, ...] = ()
    negatives: tuple[Contribution, ...] = ()
    capped: dict[str, int] = Field(default_factory=dict)
    top_behaviours: tuple[str, ...] = ()
    next_decay_at: datetime | None = None

    @property
    def total(self) -> float:
        """Fit plus engagement (0..200), the single-score gate's number."""
        return self.fit + self.engagement

    @property
    def disqualified_by(self) -> tuple[str, ...]:
        """Labels of the disqualifying negatives that apply."""
        return tuple(n.label for n in self.negatives if n.disqualifies)


def compute_scores(model: ScoringModel, facts: ContactFacts) -> ScoreCard:
    """Score ``facts`` at ``facts.now``; events after ``now`` are ignored.

    Pure and deterministic: safe in workflow code. Each score is clamped to 0..100 after all
    rules (including negatives) are summed.
    """
    compiled = model.compiled
    snapshot = Snapshot.of(facts)
    fit_rules = _fit_contributions(model, snapshot)
    negatives = _negative_contributions(compiled, snapshot)
    behaviours = _engagement_contributions(model, facts)
    engagement, recent = compiled.totals(behaviours.sums)
    fit_points = sum(c.points for c in fit_rules) + _side(negatives, "fit")
    penalty = _side(negatives, "engagement")
    return ScoreCard(
        model_version=model.version,
        computed_at=facts.now,
        engagement_window=model.engagement_window,
        fit=clamp(fit_points),
        engagement=clamp(engagement + penalty),
        engagement_recent=clamp(recent + penalty),
        contributions=(*fit_rules, *behaviours.found),
        negatives=negatives,
        capped=behaviours.capped,
        top_behaviours=_top_behaviours(behaviours.found, facts.now),
        next_decay_at=behaviours.next_change,
    )


def _side(negatives: Sequence[Contribution], kind: str) -> float:
    return sum(n.points for n in negatives if n.kind == kind)


def _fit_contributions(model: ScoringModel, snapshot: Snapshot) -> tuple[Contribution, ...]:
    return tuple(
        Contribution(
            rule=rule.name, label=rule.text, kind="fit", base_points=rule.points, points=rule.points
        )
        for rule in model.fit
        if evaluate(rule.when, snapshot)
    )


def _negative_contributions(
    compiled: CompiledModel, snapshot: Snapshot
) -> tuple[Contribution, ...]:
    """Trait negatives that hold, then event negatives seen at or before now (latest time)."""
    found: list[Contribution] = []
    for rule in compiled.trait_negatives:
        if rule.when is not None and evaluate(rule.when, snapshot):
            found.append(_negative(rule, None))
    for rule in compiled.event_negatives:
        times = [e.at for name in rule.events for e in snapshot.events_named(name)]
        seen = [at for at in times if at <= snapshot.now]
        if seen:
            found.append(_negative(rule, max(seen)))
    return tuple(found)


def _negative(rule: NegativeRule, at: datetime | None) -> Contribution:
    return Contribution(
        rule=rule.name,
        label=rule.text,
        kind=rule.applies_to,
        base_points=rule.points,
        points=rule.points,
        at=at,
        disqualifies=rule.disqualifies,
    )


class _Caps:
    """Sliding windows of *counted* events per capped rule, fed oldest first.

    An event counts when fewer than ``count`` counted events of its rule happened in the
    ``within`` before it (an event at ``t`` occupies the window ``[t, t + within)``, as
    ``within`` does in the condition language). Used identically by ``compute_scores`` and the
    backtest, so both ignore the same events.
    """

    __slots__ = ("_counted",)

    def __init__(self) -> None:
        self._counted: dict[int, list[datetime]] = {}

    def admit(self, index: int, cap: CapWindow, at: datetime) -> bool:
        """Whether the event at ``at`` of rule ``index`` counts; records it when it does."""
        times = self._counted.setdefault(index, [])
        start = at - cap.within
        while times and times[0] <= start:
            times.pop(0)
        if len(times) >= cap.count:
            return False
        times.append(at)
        return True


@dataclass(slots=True)
class _Behaviours:
    """What the pass over the events collects."""

    found: list[Contribution]
    capped: dict[str, int]
    sums: list[int]
    next_change: datetime | None = None


def _engagement_contributions(model: ScoringModel, facts: ContactFacts) -> _Behaviours:
    """Each counted behaviour with its decay, events ignored by caps, base points per band,
    and the first moment one of them moves to another band (``next_decay_at``, exact).
    """
    compiled = model.compiled
    caps = _Caps()
    result = _Behaviours(found=[], capped={}, sums=[0] * compiled.bands)
    for event in sorted(facts.events, key=_event_time):
        if event.at > facts.now:
            continue
        for index, rule in compiled.rules_by_event.get(event.name, ()):
            if not rule.matches(event.properties):
                continue
            if rule.max_per_window and not caps.admit(index, rule.max_per_window, event.at):
                result.capped[rule.name] = result.capped.get(rule.name, 0) + 1
                continue
            band = compiled.band(facts.now - event.at, rule.decays)
            result.sums[band] += rule.points
            result.found.append(_behaviour(compiled, rule, event, band))
            exit_ = compiled.exits[band]
            if exit_ is not None and rule.points:
                moment = event.at + exit_[0]
                if result.next_change is None or moment < result.next_change:
                    result.next_change = moment
    return result


def _event_time(event: EventRecord) -> datetime:
    return event.at


def _behaviour(
    compiled: CompiledModel, rule: EngagementRule, event: EventRecord, band: int
) -> Contribution:
    factor = compiled.factors[band]
    return Contribution(
        rule=rule.name,
        label=rule.text,
        kind="engagement",
        base_points=rule.points,
        factor=factor,
        points=rule.points * factor,
        at=event.at,
        recent=compiled.recent[band],
    )


def _top_behaviours(behaviours: Sequence[Contribution], now: datetime) -> tuple[str, ...]:
    """The three rules that earn the most points after decay, as a rep would say them.

    Ties go to the rule seen most recently, then to the rule first seen (stable sorts), so the
    wording never depends on dict or set order.
    """
    grouped: dict[str, list[Contribution]] = {}
    for behaviour in behaviours:
        if behaviour.points > 0:
            grouped.setdefault(behaviour.rule, []).append(behaviour)
    ranked = sorted(grouped.values(), key=_latest, reverse=True)
    ranked.sort(key=lambda items: sum(c.points for c in items), reverse=True)
    return tuple(_phrase(items, now) for items in ranked[:3])


def _latest(items: Sequence[Contribution]) -> datetime:
    return max(c.at for c in items if c.at is not None)


def _phrase(items: Sequence[Contribution], now: datetime) -> str:
    """``Viewed the pricing page 3 times (last 2 days ago)``."""
    ago = _ago(now - _latest(items))
    if len(items) == 1:
        return f"{items[0].label} ({ago})"
    return f"{items[0].label} {len(items)} times (last {ago})"


def _ago(age: timedelta) -> str:
    if age < _HOUR:
        return "less than an hour ago"
    if age < _DAY:
        hours = age // _HOUR
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = age // _DAY
    return f"{days} day{'s' if days != 1 else ''} ago"


# ---------------------------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------------------------


class GateResult(BaseModel):
    """Whether the contact qualifies now, under which segment's gate, and why in one line."""

    model_config = ConfigDict(frozen=True)

    model_version: str
    segment: str | None
    qualifies: Level | None
    hand_raiser: bool = False
    reason: str


def select_gate(model: ScoringModel, lists: AbstractSet[str]) -> tuple[str | None, Gate]:
    """The first segment whose list the contact is on, with its gate; else the default gate."""
    for segment in model.gates.segments:
        if segment.list_ in lists:
            return segment.list_, segment.gate
    return None, model.gates.default


def gate_level(gate: Gate, fit: float, engagement: float, recent: float) -> Level | None:
    """What ``gate`` makes of these scores (hand-raisers and disqualifiers aside)."""
    if gate.mode == "combined":
        passed = fit > gate.fit_above and recent > gate.engagement_above
        return "MQL" if passed else None
    total = fit + engagement
    if gate.sql_at is not None and total >= gate.sql_at:
        return "SQL"
    return "MQL" if total >= gate.mql_at else None


def evaluate_gate(model: ScoringModel, card: ScoreCard, facts: ContactFacts) -> GateResult:
    """Decide MQL/SQL for ``card`` (computed from ``facts``) and say why in a rep's words.

    Order: a disqualifying negative blocks everything; a hand-raiser event within the
    engagement window qualifies as MQL at once; otherwise the segment's (or default) gate.
    """
    segment, gate = select_gate(model, facts.lists)
    where = f"{segment} gate" if segment else "default gate"
    if card.disqualified_by:
        reason = f"Not qualified: {'; '.join(card.disqualified_by)} (disqualifying)."
        return GateResult(
            model_version=model.version, segment=segment, qualifies=None, reason=reason
        )
    raised = _hand_raise(model, facts)
    if raised is not None:
        label = model.compiled.label(raised.name)
        reason = f"Hand-raiser: {label} ({_ago(facts.now - raised.at)}), qualifies as MQL at once."
        return GateResult(
            model_version=model.version,
            segment=segment,
            qualifies="MQL",
            hand_raiser=True,
            reason=reason,
        )
    level = gate_level(gate, card.fit, card.engagement, card.engagement_recent)
    return GateResult(
        model_version=model.version,
        segment=segment,
        qualifies=level,
        reason=f"{_gate_reason(gate, card, level)} ({where}).",
    )


def _hand_raise(model: ScoringModel, facts: ContactFacts) -> EventRecord | None:
    """The latest hand-raiser event within the engagement window, if any."""
    window = model.engagement_window
    names = model.compiled.hand_raisers
    found = [
        event
        for event in facts.events
        if event.name in names and timedelta(0) <= facts.now - event.at < window
    ]
    return max(found, key=_event_time) if found else None


def _num(value: float) -> str:
    return f"{round(value, 1):g}"


def _gate_reason(gate: Gate, card: ScoreCard, level: Level | None) -> str:
    if gate.mode == "combined":
        days = _days(card.engagement_window)
        fit_ok = card.fit > gate.fit_above
        eng_ok = card.engagement_recent > gate.engagement_above
        fit_text = f"fit {_num(card.fit)} is {'' if fit_ok else 'not '}above {_num(gate.fit_above)}"
        eng_text = (
            f"engagement in the last {days} {_num(card.engagement_recent)} is "
            f"{'' if eng_ok else 'not '}above {_num(gate.engagement_above)}"
        )
        joiner = " and " if fit_ok == eng_ok else " but "
        head = "Qualifies as MQL" if level else "Not qualified yet"
        return f"{head}: {fit_text}{joiner}{eng_text}"
    total = (
        f"total score {_num(card.total)} (fit {_num(card.fit)} + "
        f"engagement {_num(card.engagement)})"
    )
    if level is None:
        return f"Not qualified yet: {total} is below the MQL threshold {_num(gate.mql_at)}"
    threshold = gate.sql_at if level == "SQL" and gate.sql_at is not None else gate.mql_at
    return f"Qualifies as {level}: {total} reached {_num(threshold)}"


def _days(window: timedelta) -> str:
    days = window / _DAY
    return f"{days:g} days" if days != 1 else "day"


# ---------------------------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------------------------


def explain(card: ScoreCard) -> list[str]:
    """Plain-English lines for ``revops contacts why``: each score and the rules behind it."""
    when = card.computed_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    lines = [
        f"Scoring model {card.model_version} at {when}: fit {_num(card.fit)}/100, "
        f"engagement {_num(card.engagement)}/100 "
        f"({_num(card.engagement_recent)} in the last {_days(card.engagement_window)}).",
        "Fit:",
        *_fit_lines(card),
        "Engagement:",
        *_engagement_lines(card),
    ]
    if card.top_behaviours:
        lines.append("Top behaviours: " + "; ".join(card.top_behaviours) + ".")
    if card.next_decay_at is not None:
        moment = card.next_decay_at.strftime("%Y-%m-%d %H:%M %Z").strip()
        lines.append(f"Scores next change by age alone at {moment}.")
    return lines


def _signed(points: float) -> str:
    return f"+{_num(points)}" if points > 0 else _num(points)


def _fit_lines(card: ScoreCard) -> list[str]:
    rules = [c for c in card.contributions if c.kind == "fit"]
    rules += [n for n in card.negatives if n.kind == "fit"]
    lines = [f"  {_signed(c.points)} {c.label}" for c in rules] or ["  no fit rule matched"]
    return lines + _clamp_note(sum(c.points for c in rules), card.fit)


def _engagement_lines(card: ScoreCard) -> list[str]:
    """Behaviours grouped by rule and decay factor (largest first), then caps and negatives."""
    groups: dict[tuple[str, float], list[Contribution]] = {}
    labels: dict[str, str] = {}
    for c in card.contributions:
        if c.kind == "engagement":
            groups.setdefault((c.rule, c.factor), []).append(c)
            labels[c.rule] = c.label
    ranked = sorted(groups.values(), key=lambda items: sum(c.points for c in items), reverse=True)
    lines = [_behaviour_line(items) for items in ranked]
    lines += [
        f"  {labels.get(rule, rule)}: {count} more not counted (over the rule's cap)"
        for rule, count in card.capped.items()
    ]
    negatives = [n for n in card.negatives if n.kind == "engagement"]
    lines += [f"  {_signed(n.points)} {n.label}" for n in negatives]
    if not lines:
        return ["  no behaviour scored"]
    raw = sum(c.points for c in card.contributions if c.kind == "engagement")
    return lines + _clamp_note(raw + sum(n.points for n in negatives), card.engagement)


def _behaviour_line(items: Sequence[Contribution]) -> str:
    first, points = items[0], sum(c.points for c in items)
    times = "" if len(items) == 1 else f" x{len(items)}"
    last = _latest(items).strftime("%Y-%m-%d")
    if first.factor == 1.0:
        note = ""
    elif first.factor == 0.0:
        note = ", too old to count"
    else:
        note = f", counted at {first.factor:g} for age"
    return f"  {_signed(points)} {first.label}{times} (last {last}{note})"


def _clamp_note(raw: float, score: float) -> list[str]:
    if raw > SCORE_MAX:
        return [f"  capped at 100 (rules add up to {_num(raw)})"]
    if raw < 0 and score == 0:
        return [f"  floored at 0 (rules add up to {_num(raw)})"]
    return []
