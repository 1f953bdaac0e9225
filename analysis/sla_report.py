"""SLA attainment and speed-to-lead from handoff SLA records (the MQL SLA compliance report).

Attainment counts owner turns, not handoffs, so each rep answers for the leads they held: a
turn is *met* when its owner responded (first touch, accept or reject) before any breach, and
*breached* when its deadline passed first; a turn still inside its window is *open* and left
out. Time to first touch is ``first_contact_date - mql_date`` of each touched handoff, given to
the team and rep who touched it. A team below the attainment target (80% by default) is flagged
as a capacity problem: leads are arriving faster than its reps can answer them.
Pure: callers pass the records and ``now``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel

from handoff.contract import SlaRecord, TurnRecord

__all__ = ["NO_SOURCE", "SlaLine", "SlaReport", "percentile", "sla_report"]

NO_SOURCE = "(no touch)"
"""The source of a lead with no recorded first touch (as the funnel and velocity reports say)."""


class SlaLine(BaseModel):
    """Attainment and time to first touch of one team, one rep, or everyone."""

    name: str
    turns: int
    met: int
    breached: int
    open: int
    attainment: float | None
    touched: int
    median_first_touch: timedelta | None
    p90_first_touch: timedelta | None
    capacity_problem: bool = False


class SlaReport(BaseModel):
    """The whole report: everyone, then per team, then per rep."""

    generated_at: datetime
    since: datetime | None
    target: float
    handoffs: int
    overall: SlaLine
    teams: list[SlaLine]
    reps: list[SlaLine]
    stages: list[SlaLine] = []
    """Per handoff stage: ``sdr`` (MQL to first touch) and ``ae`` (qualified to first touch)."""
    sources: list[SlaLine] = []
    """Speed-to-lead per lead source (first-touch channel): the SDR stage's turns and time
    from the MQL to the first touch."""


def percentile(values: Sequence[timedelta], q: float) -> timedelta | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _verdict(turn: TurnRecord, now: datetime) -> str:
    if turn.breached:
        return "breached"
    if turn.responded_at is not None:
        return "met"
    return "open" if turn.deadline > now else "breached"


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {"met": 0, "breached": 0, "open": 0}
        self.touches: list[timedelta] = []

    def line(self, name: str, target: float, *, flag: bool) -> SlaLine:
        met, breached = self.counts["met"], self.counts["breached"]
        decided = met + breached
        attainment = met / decided if decided else None
        return SlaLine(
            name=name,
            turns=sum(self.counts.values()),
            met=met,
            breached=breached,
            open=self.counts["open"],
            attainment=attainment,
            touched=len(self.touches),
            median_first_touch=percentile(self.touches, 50),
            p90_first_touch=percentile(self.touches, 90),
            capacity_problem=flag and attainment is not None and attainment < target,
        )


def sla_report(
    records: Iterable[SlaRecord],
    now: datetime,
    *,
    target: float = 0.8,
    since: datetime | None = None,
    sources: Mapping[str, str] | None = None,
) -> SlaReport:
    """Attainment per team and rep, speed-to-lead, and teams under ``target`` flagged.

    ``sources`` maps a contact to its lead source (first-touch channel); with it the report
    breaks the SDR stage down by source (a contact without one is ``NO_SOURCE``)."""
    overall = _Tally()
    teams: defaultdict[str, _Tally] = defaultdict(_Tally)
    reps: defaultdict[str, _Tally] = defaultdict(_Tally)
    stages: defaultdict[str, _Tally] = defaultdict(_Tally)
    by_source: defaultdict[str, _Tally] = defaultdict(_Tally)
    count = 0
    for record in records:
        count += 1
        source = (
            by_source[sources.get(record.contact_id, NO_SOURCE)] if sources is not None else None
        )
        for turn in record.turns:
            verdict = _verdict(turn, now)
            for tally in (overall, teams[turn.team or "(no team)"], reps[turn.owner]):
                tally.counts[verdict] += 1
            stages[turn.stage].counts[verdict] += 1
            if source is not None and turn.stage == "sdr":
                source.counts[verdict] += 1
        for stage, team, owner, touch in _stage_touches(record):
            stages[stage].touches.append(touch)
            teams[team or "(no team)"].touches.append(touch)
            reps[owner or "?"].touches.append(touch)
            if stage == "sdr":
                overall.touches.append(touch)
                if source is not None:
                    source.touches.append(touch)
    return SlaReport(
        generated_at=now,
        since=since,
        target=target,
        handoffs=count,
        overall=overall.line("all teams", target, flag=False),
        teams=[teams[name].line(name, target, flag=True) for name in sorted(teams)],
        reps=[reps[name].line(name, target, flag=False) for name in sorted(reps)],
        stages=[
            stages[name].line(name, target, flag=True) for name in _STAGE_ORDER if name in stages
        ],
        sources=[by_source[name].line(name, target, flag=False) for name in sorted(by_source)],
    )


_STAGE_ORDER = ("sdr", "ae")


def _stage_touches(record: SlaRecord) -> list[tuple[str, str | None, str | None, timedelta]]:
    """Time to first touch per stage, with the team and rep who touched: the SDR's from the
    MQL, the AE's from the moment the lead reached the AE stage. A record kept before turns
    had touches counts its first contact, given to its owner (as before)."""
    touches: list[tuple[str, str | None, str | None, timedelta]] = []
    for stage in _STAGE_ORDER:
        turns = [turn for turn in record.turns if turn.stage == stage]
        touched = [turn for turn in turns if turn.first_touch_at is not None]
        if not turns or not touched:
            continue
        first = min(touched, key=lambda turn: turn.first_touch_at or turn.assigned_at)
        assert first.first_touch_at is not None
        start = record.mql_date if stage == "sdr" else turns[0].assigned_at
        delay = max(first.first_touch_at - start, timedelta(0))
        touches.append((stage, first.team, first.owner, delay))
    if not touches and record.first_contact_date is not None:
        delay = max(record.first_contact_date - record.mql_date, timedelta(0))
        touches.append(("sdr", record.team, record.owner, delay))
    return touches
