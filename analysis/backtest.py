"""Backtest: replay an event history against a candidate scoring model, without Temporal.

Ops engineers change point values and thresholds as hypotheses (seed 002: "the threshold almost
always needs adjustment after the first backtest"). This module answers, before a deploy, how
many MQLs a model would have produced and how many of them sales went on to qualify.

What a threshold means here (``THRESHOLD_MEANING``): at threshold T a contact becomes an MQL
the first time fit + engagement (each 0..100, engagement decayed as the model says) reaches T,
or at once on a hand-raiser event; a contact with a disqualifying negative never does. That is
the model with its gate replaced by a single-score gate at T. The model's own gate (combined,
per segment, hand-raisers) is reported next to the thresholds. An MQL *converted* when the
contact has an SQL outcome event (``Lead Qualified`` by default, posted by the sales tool) at
or after the moment it became an MQL. Healthy MQL-to-SQL conversion is 10%-35% (seed 002).

Speed: events are grouped per contact and each contact's timeline is replayed once, keeping
per-band point sums that move as time passes (the same bands and integer sums as
``compute_scores``, so the replay agrees with it exactly). Scores only fall with time alone, so
qualification is checked only after events that can raise them. A million events take seconds.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict

from audience.conditions import Snapshot, evaluate, referenced_lists
from audience.facts import ContactFacts
from audience.lists import ListsConfig
from scoring.model import CompiledModel, Gate, ScoringModel, clamp, gate_level, select_gate

__all__ = [
    "HEALTHY_CONVERSION",
    "SQL_OUTCOME_EVENT",
    "THRESHOLD_MEANING",
    "BacktestReport",
    "GateOutcome",
    "Memberships",
    "memberships_for",
    "parse_thresholds",
    "run",
    "write_csv",
]

SQL_OUTCOME_EVENT = "Lead Qualified"
"""The event a sales tool posts when a rep qualifies a lead (config/lifecycle.yaml: -> SQL)."""

HEALTHY_CONVERSION = (0.10, 0.35)
"""MQL-to-SQL rates outside this range suggest a threshold too loose (below) or tight (above)."""

THRESHOLD_MEANING = (
    "threshold T: MQL the first time fit + engagement (each 0..100, decayed) reaches T, or at "
    "once on a hand-raiser event; disqualified contacts never. Converted: an SQL outcome event "
    "at or after the MQL moment."
)

_PROGRESS_EVERY = 8192
_EMPTY: Mapping[str, Any] = MappingProxyType({})

Memberships = Callable[[ContactFacts], AbstractSet[str]]
"""Which lists a contact (traits only, no events) is on: selects the segment gates."""


def memberships_for(model: ScoringModel, lists: ListsConfig) -> Memberships:
    """Memberships of only the lists ``model`` reads (and the lists those refer to).

    Evaluating every list and its next expiry on each identify would cost far more than the
    replay itself; segment gates usually need two or three trait-only lists. Contacts here
    have no events, so windowed lists are never members (the backtest's known limit).
    """
    needed = set(model.lists_used)
    order = lists.evaluation_order
    for name, condition in reversed(order):  # dependencies come earlier in the order
        if name in needed:
            needed |= referenced_lists(condition)
    chosen = tuple((name, condition) for name, condition in order if name in needed)

    def members(facts: ContactFacts) -> frozenset[str]:
        found: set[str] = set()
        snapshot = Snapshot.of(facts)
        for name, condition in chosen:
            if condition.holds(snapshot.with_lists(found)):
                found.add(name)
        return frozenset(found)

    return members


Flag = Literal["no MQLs", "too loose", "too tight"]

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


class GateOutcome(BaseModel):
    """MQL volume and conversion under one gate (a threshold, or the model's own gate)."""

    model_config = ConfigDict(frozen=True)

    gate: str
    threshold: int | None = None
    mqls: int
    hand_raiser_mqls: int
    converted: int
    conversion: float | None
    sql_missed: int
    healthy: bool
    flag: Flag | None = None

    @property
    def advice(self) -> str:
        """The flag in words, e.g. "below 10%: threshold too loose"."""
        low, high = HEALTHY_CONVERSION
        return {
            None: "healthy",
            "no MQLs": "no MQLs at this threshold",
            "too loose": f"below {low:.0%}: threshold too loose",
            "too tight": f"above {high:.0%}: threshold too tight",
        }[self.flag]


class BacktestReport(BaseModel):
    """The backtest's answer: per threshold and for the model's own gate."""

    model_config = ConfigDict(frozen=True)

    model_version: str
    events: int
    skipped: int
    contacts: int
    sql_contacts: int
    healthy_range: tuple[float, float]
    thresholds: tuple[GateOutcome, ...]
    model_gate: GateOutcome
    meaning: str = THRESHOLD_MEANING


def write_csv(report: BacktestReport, out: TextIO) -> None:
    """One row per threshold, then the model's own gate; conversion as a fraction."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "gate",
            "threshold",
            "mqls",
            "hand_raiser_mqls",
            "converted",
            "conversion",
            "sql_missed",
            "healthy",
            "flag",
        ]
    )
    for row in (*report.thresholds, report.model_gate):
        writer.writerow(
            [
                row.gate,
                "" if row.threshold is None else row.threshold,
                row.mqls,
                row.hand_raiser_mqls,
                row.converted,
                "" if row.conversion is None else f"{row.conversion:.4f}",
                row.sql_missed,
                "yes" if row.healthy else "no",
                row.flag or "",
            ]
        )


def parse_thresholds(spec: str) -> tuple[int, ...]:
    """``"40:90:5"`` (start:stop:step, stop included) or ``"50,65,80"``; ValueError if bad."""
    text = spec.strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 5
            if step <= 0 or stop < start:
                raise ValueError
            values = tuple(range(start, stop + 1, step))
        else:
            values = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise ValueError(
            f"{spec!r} is not a threshold list: use start:stop:step (40:90:5) or 50,65,80"
        ) from None
    if not values:
        raise ValueError(f"{spec!r} names no threshold")
    return values


# ---------------------------------------------------------------------------------------------
# Reading the history
# ---------------------------------------------------------------------------------------------

_Row = tuple[datetime, str | None, Mapping[str, Any]]
"""(when, event name or None for identify, properties or traits)."""


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class _History:
    """Every contact's events, in input order; sorted per contact before replay."""

    by_contact: dict[str, list[_Row]] = field(default_factory=dict)
    events: int = 0
    skipped: int = 0


def _read(
    events: Iterable[Mapping[str, Any]],
    wanted_properties: AbstractSet[str],
    tick: Callable[[int], None],
) -> _History:
    """Group the Segment-like records by contact; malformed ones are counted and skipped."""
    history = _History()
    names: dict[str, str] = {}  # one string object per event name: far less memory
    by_contact = history.by_contact
    seen = 0
    for record in events:
        seen += 1
        if not seen % _PROGRESS_EVERY:
            tick(seen)
        row = _row(record, wanted_properties, names)
        contact = record.get("userId") or record.get("anonymousId")
        if row is None or not isinstance(contact, str):
            history.skipped += 1
            continue
        rows = by_contact.get(contact)
        if rows is None:
            by_contact[contact] = [row]
        else:
            rows.append(row)
    history.events = seen
    tick(seen)
    return history


def _row(
    record: Mapping[str, Any], wanted_properties: AbstractSet[str], names: dict[str, str]
) -> _Row | None:
    at = _parse_time(record.get("timestamp"))
    if at is None:
        return None
    if record.get("type") == "identify":
        traits = record.get("traits")
        return (at, None, traits if isinstance(traits, Mapping) else _EMPTY)
    name = record.get("event") or record.get("name")
    if not isinstance(name, str) or not name:
        return None
    name = names.setdefault(name, name)
    properties = record.get("properties") if name in wanted_properties else None
    return (at, name, properties if isinstance(properties, Mapping) else _EMPTY)


# ---------------------------------------------------------------------------------------------
# Replaying one contact
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    """When one contact became an MQL at each threshold and under the model's gate."""

    mql_at: list[datetime | None]
    via_hand: list[bool]
    model_at: datetime | None = None
    model_via_hand: bool = False
    sql_at: datetime | None = None


@dataclass(slots=True)
class _Traits:
    """What follows from the contact's traits: fit points, trait negatives, the segment gate."""

    gate: Gate
    fit: int = 0
    penalty: int = 0
    disqualified: bool = False


@dataclass(slots=True)
class _Timeline:
    """One contact's running state during the replay."""

    bands: list[deque[tuple[datetime, int]]]
    sums: list[int]
    traits: _Traits
    profile: dict[str, Any] = field(default_factory=dict)
    caps: dict[int, deque[datetime]] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    fit_penalty: int = 0
    penalty: int = 0
    disqualified: bool = False
    hand_at: datetime | None = None
    reached: int = 0


class _Replay:
    """Replays contacts one at a time with the model's bands, caps and gates."""

    def __init__(
        self,
        model: ScoringModel,
        thresholds: Sequence[int],
        outcome_event: str,
        memberships: Memberships | None,
    ) -> None:
        self.model = model
        self.compiled: CompiledModel = model.compiled
        self.thresholds = tuple(sorted(set(thresholds)))
        self.outcome_event = outcome_event
        self.memberships = memberships

    def contact(self, contact: str, rows: list[_Row]) -> _Outcome:
        """Replay one contact's timeline (sorted here; equal times keep their input order)."""
        rows.sort(key=_first)
        bands = self.compiled.bands
        line = _Timeline(
            bands=[deque() for _ in range(bands)],
            sums=[0] * bands,
            traits=self._traits(contact, {}, rows[0][0]),  # rules may match missing traits
        )
        count = len(self.thresholds)
        outcome = _Outcome(mql_at=[None] * count, via_hand=[False] * count)
        for at, name, payload in rows:
            if name is None:
                line.profile.update(payload)
                line.traits = self._traits(contact, line.profile, at)
            elif not self._behaviour(line, outcome, at, name, payload):
                continue  # nothing that raises a score: qualification cannot change
            if not self._settled(line, outcome):
                self._check(line, outcome, at)
        return outcome

    def _traits(self, contact: str, profile: Mapping[str, Any], at: datetime) -> _Traits:
        """Fit points, trait negatives and the segment gate for this profile."""
        facts = ContactFacts(contact_id=contact, now=at, traits=dict(profile))
        if self.memberships is not None:
            facts = facts.model_copy(update={"lists": frozenset(self.memberships(facts))})
        snapshot = Snapshot.of(facts)
        result = _Traits(gate=select_gate(self.model, facts.lists)[1])
        result.fit = sum(r.points for r in self.model.fit if evaluate(r.when, snapshot))
        for rule in self.compiled.trait_negatives:
            if rule.when is not None and evaluate(rule.when, snapshot):
                if rule.applies_to == "fit":
                    result.fit += rule.points
                else:
                    result.penalty += rule.points
                result.disqualified = result.disqualified or rule.disqualifies
        return result

    def _behaviour(
        self,
        line: _Timeline,
        outcome: _Outcome,
        at: datetime,
        name: str,
        payload: Mapping[str, Any],
    ) -> bool:
        """Apply one event; True when it may have raised a score or raised a hand."""
        compiled = self.compiled
        if name == self.outcome_event and outcome.sql_at is None:
            outcome.sql_at = at
        for negative in compiled.negatives_by_event.get(name, ()):
            if negative.name not in line.fired:
                line.fired.add(negative.name)
                if negative.applies_to == "fit":
                    line.fit_penalty += negative.points
                else:
                    line.penalty += negative.points
                line.disqualified = line.disqualified or negative.disqualifies
        raised = name in compiled.hand_raisers
        if raised:
            line.hand_at = at
        for index, rule in compiled.rules_by_event.get(name, ()):
            if rule.where and not rule.matches(payload):
                continue
            cap = rule.max_per_window
            if cap is not None and not _admit(line.caps, index, cap.count, cap.within, at):
                continue
            band = compiled.band(_NO_AGE, rule.decays)
            line.bands[band].append((at, rule.points))
            line.sums[band] += rule.points
            raised = raised or rule.points > 0
        return raised

    def _settled(self, line: _Timeline, outcome: _Outcome) -> bool:
        """Nothing left to learn: disqualified, or qualified everywhere already."""
        if line.disqualified or line.traits.disqualified:
            return True
        return line.reached == len(self.thresholds) and outcome.model_at is not None

    def _check(self, line: _Timeline, outcome: _Outcome, at: datetime) -> None:
        """Scores at ``at`` exactly as ``compute_scores`` would give them; record new MQLs."""
        compiled, thresholds = self.compiled, self.thresholds
        _advance(compiled, line.bands, line.sums, at)
        engagement, recent = compiled.totals(line.sums)
        penalty = line.traits.penalty + line.penalty
        engagement, recent = clamp(engagement + penalty), clamp(recent + penalty)
        fit = clamp(line.traits.fit + line.fit_penalty)
        hand = line.hand_at is not None and at - line.hand_at < compiled.window
        total = fit + engagement
        while line.reached < len(thresholds) and (hand or total >= thresholds[line.reached]):
            outcome.mql_at[line.reached] = at
            outcome.via_hand[line.reached] = total < thresholds[line.reached]
            line.reached += 1
        if outcome.model_at is None:
            level = gate_level(line.traits.gate, fit, engagement, recent)
            if hand or level is not None:
                outcome.model_at, outcome.model_via_hand = at, level is None


_NO_AGE = timedelta(0)


def _first(row: _Row) -> datetime:
    return row[0]


def _admit(
    caps: dict[int, deque[datetime]], index: int, count: int, within: timedelta, at: datetime
) -> bool:
    """The cap rule of ``compute_scores`` (see ``scoring.model._Caps``), on a deque."""
    times = caps.get(index)
    if times is None:
        times = caps[index] = deque()
    start = at - within
    while times and times[0] <= start:
        times.popleft()
    if len(times) >= count:
        return False
    times.append(at)
    return True


def _advance(
    compiled: CompiledModel,
    bands: list[deque[tuple[datetime, int]]],
    sums: list[int],
    now: datetime,
) -> None:
    """Move behaviours into the band their age at ``now`` belongs to (oldest leave first)."""
    for index, exit_ in enumerate(compiled.exits):
        queue = bands[index]
        if exit_ is None or not queue:
            continue
        edge, target = exit_
        while queue and now - queue[0][0] >= edge:
            moved = queue.popleft()
            sums[index] -= moved[1]
            bands[target].append(moved)
            sums[target] += moved[1]


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run(
    model: ScoringModel,
    events: Iterable[Mapping[str, Any]],
    thresholds: Sequence[int],
    progress: Callable[[int], None] | None = None,
    *,
    outcome_event: str = SQL_OUTCOME_EVENT,
    memberships: Memberships | None = None,
) -> BacktestReport:
    """Replay ``events`` (Segment-like dicts, any order) and report MQLs per threshold.

    ``progress`` receives a running count of work done in which every event counts twice
    (once read, once replayed), so a progress bar's total is twice the number of events.
    ``memberships`` gives each contact's lists from its traits, selecting segment gates;
    without it every contact is judged by the default gate.
    """
    tick = progress or _ignore
    wanted = {rule.event for rule in model.engagement if rule.where}
    history = _read(events, wanted, tick)
    replay = _Replay(model, thresholds, outcome_event, memberships)
    tally = _Tally(len(replay.thresholds))
    done = history.events
    for contact, rows in history.by_contact.items():
        tally.add(replay.contact(contact, rows))
        before, done = done, done + len(rows)
        if before // _PROGRESS_EVERY != done // _PROGRESS_EVERY:
            tick(done)
    tick(2 * history.events)
    return tally.report(model, replay.thresholds, history)


def _ignore(_: int) -> None:
    return None


@dataclass(slots=True)
class _Counts:
    mqls: int = 0
    hand: int = 0
    converted: int = 0


class _Tally:
    """Counts per threshold (and for the model's gate) as contacts finish."""

    def __init__(self, count: int) -> None:
        self.rows = [_Counts() for _ in range(count)]
        self.model = _Counts()
        self.sql = 0

    def add(self, outcome: _Outcome) -> None:
        if outcome.sql_at is not None:
            self.sql += 1
        pairs = zip(outcome.mql_at, outcome.via_hand, self.rows, strict=True)
        for at, via_hand, counts in pairs:
            _count(counts, at, via_hand, outcome.sql_at)
        _count(self.model, outcome.model_at, outcome.model_via_hand, outcome.sql_at)

    def report(
        self, model: ScoringModel, thresholds: Sequence[int], history: _History
    ) -> BacktestReport:
        rows = tuple(
            self._outcome(f"total >= {t}", counts, t)
            for t, counts in zip(thresholds, self.rows, strict=True)
        )
        return BacktestReport(
            model_version=model.version,
            events=history.events,
            skipped=history.skipped,
            contacts=len(history.by_contact),
            sql_contacts=self.sql,
            healthy_range=HEALTHY_CONVERSION,
            thresholds=rows,
            model_gate=self._outcome("model gate", self.model, None),
        )

    def _outcome(self, gate: str, counts: _Counts, threshold: int | None) -> GateOutcome:
        rate = counts.converted / counts.mqls if counts.mqls else None
        low, high = HEALTHY_CONVERSION
        flag: Flag | None = None
        if rate is None:
            flag = "no MQLs"
        elif rate < low:
            flag = "too loose"
        elif rate > high:
            flag = "too tight"
        return GateOutcome(
            gate=gate,
            threshold=threshold,
            mqls=counts.mqls,
            hand_raiser_mqls=counts.hand,
            converted=counts.converted,
            conversion=rate,
            sql_missed=self.sql - counts.converted,
            healthy=flag is None,
            flag=flag,
        )


def _count(counts: _Counts, at: datetime | None, via_hand: bool, sql_at: datetime | None) -> None:
    if at is None:
        return
    counts.mqls += 1
    counts.hand += via_hand
    if sql_at is not None and sql_at >= at:
        counts.converted += 1
