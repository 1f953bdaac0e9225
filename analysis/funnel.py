"""Funnel and velocity reports: the views, and the arithmetic on the store's aggregates.

The store counts passes and times in SQL (``store/reports.py``) and hands over one aggregate
per group; this module turns them into the reports people read: conversion between
consecutive stages and MQL to customer (by segment, source, journey and monthly cohort), time
in each stage (median, p90, a distribution), speed-to-lead by team and source, acceptance and
rejection with reasons, and what became of recycled leads.

Counting rules (see ``store/funnel.py`` for passes): a pass counts in a stage's ``reached``
when it reached the stage *or a later one* within the period, in ``entered`` when it had an
entry of exactly that stage, and in ``advanced`` when, having reached the stage in the period,
it went on to reach the next one (whenever). Conversion is ``advanced / reached``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from analysis.report_window import ReportWindow, rate
from lifecycle.stages import STAGES, Stage

__all__ = [
    "DISTRIBUTION_BUCKETS",
    "AcceptanceLine",
    "FunnelGroup",
    "FunnelReport",
    "GroupCounts",
    "ReasonLine",
    "RecycleLine",
    "Recycled",
    "SpeedLine",
    "StageLine",
    "StageTime",
    "VelocityReport",
    "funnel_group",
    "funnel_report",
]

DISTRIBUTION_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1h", 3600.0),
    ("1h-1d", 86400.0),
    ("1-7d", 7 * 86400.0),
    ("7-30d", 30 * 86400.0),
    ("30-90d", 90 * 86400.0),
    (">= 90d", float("inf")),
)
"""Time-in-stage buckets (label, upper bound in seconds, exclusive)."""


@dataclass(frozen=True)
class GroupCounts:
    """One group's pass counts per stage (in ``STAGES`` order) from the store."""

    key: str
    reached: Sequence[int]
    entered: Sequence[int]
    advanced: Sequence[int]
    mql_to_customer: int


class StageLine(BaseModel):
    """One stage of a funnel and the step to the next one."""

    stage: Stage
    reached: int
    entered: int
    advanced: int | None
    conversion: float | None


class FunnelGroup(BaseModel):
    """The funnel of one group (everyone, a segment, a source, a journey or a cohort)."""

    key: str
    passes: int
    stages: list[StageLine]
    mqls: int
    mql_to_customer: int
    mql_to_customer_rate: float | None


class FunnelReport(BaseModel):
    """Conversion overall and by segment, first-touch source, journey and monthly cohort."""

    generated_at: datetime
    since: datetime | None
    until: datetime
    segment: str | None
    overall: FunnelGroup
    by_segment: list[FunnelGroup]
    by_source: list[FunnelGroup]
    by_journey: list[FunnelGroup]
    by_cohort: list[FunnelGroup]

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per (breakdown, group, stage)."""
        rows: list[dict[str, Any]] = []
        groups = [("all", [self.overall])]
        groups += [(by, getattr(self, f"by_{by}")) for by in ("segment", "source", "journey")]
        groups.append(("cohort", self.by_cohort))
        for by, lines in groups:
            for group in lines:
                for line in group.stages:
                    rows.append({"by": by, "group": group.key, **line.model_dump(mode="json")})
        return rows


def funnel_group(counts: GroupCounts) -> FunnelGroup:
    """A group's stage lines: conversion from each stage to the next."""
    lines = []
    last = len(STAGES) - 1
    for index, stage in enumerate(STAGES):
        advanced = counts.advanced[index] if index < last else None
        lines.append(
            StageLine(
                stage=stage,
                reached=counts.reached[index],
                entered=counts.entered[index],
                advanced=advanced,
                conversion=rate(advanced, counts.reached[index]) if advanced is not None else None,
            )
        )
    mqls = counts.reached[Stage.MQL.rank]
    return FunnelGroup(
        key=counts.key,
        passes=counts.reached[0],
        stages=lines,
        mqls=mqls,
        mql_to_customer=counts.mql_to_customer,
        mql_to_customer_rate=rate(counts.mql_to_customer, mqls),
    )


def funnel_report(
    window: ReportWindow, overall: GroupCounts, groups: Mapping[str, Sequence[GroupCounts]]
) -> FunnelReport:
    """The funnel report from the store's counts (``groups`` by breakdown name)."""

    def lines(by: str) -> list[FunnelGroup]:
        return [funnel_group(counts) for counts in groups.get(by, ())]

    return FunnelReport(
        generated_at=window.generated_at,
        since=window.since,
        until=window.until,
        segment=window.segment,
        overall=funnel_group(overall),
        by_segment=lines("segment"),
        by_source=lines("source"),
        by_journey=lines("journey"),
        by_cohort=lines("cohort"),
    )


# ---- velocity ----------------------------------------------------------------------------


class StageTime(BaseModel):
    """Time spent in one stage by the stays that ended in the period's entries."""

    stage: Stage
    stays: int
    in_stage_now: int
    median: timedelta | None
    p90: timedelta | None
    distribution: dict[str, int]


class SpeedLine(BaseModel):
    """Speed-to-lead (MQL to first sales touch) of a team, a source, or everyone."""

    name: str
    handoffs: int
    touched: int
    median: timedelta | None
    p90: timedelta | None


class AcceptanceLine(BaseModel):
    """What sales did with the leads handed to a team (or everyone)."""

    name: str
    handoffs: int
    accepted: int
    rejected: int
    expired: int
    open: int
    acceptance_rate: float | None
    rejection_rate: float | None


class ReasonLine(BaseModel):
    """One rejection (or loss) reason and how often it was given."""

    reason: str
    count: int
    share: float | None


class RecycleLine(BaseModel):
    """Recycled passes that had reached ``from_stage`` and then reached ``became``."""

    from_stage: Stage
    became: Stage
    count: int


class Recycled(BaseModel):
    """Leads recycled in the period, and what became of them since."""

    recycles: int
    contacts: int
    recycled_again: int
    reached_mql_again: int
    became_customers: int
    outcomes: list[RecycleLine]


class VelocityReport(BaseModel):
    """Time in stage, speed-to-lead, acceptance and rejection, recycled leads."""

    generated_at: datetime
    since: datetime | None
    until: datetime
    segment: str | None
    stages: list[StageTime]
    speed_to_lead: SpeedLine
    speed_by_team: list[SpeedLine]
    speed_by_source: list[SpeedLine]
    acceptance: AcceptanceLine
    acceptance_by_team: list[AcceptanceLine]
    rejection_reasons: list[ReasonLine]
    recycled: Recycled

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per stage, speed line and acceptance line (``section`` says which)."""
        rows: list[dict[str, Any]] = []
        for stage in self.stages:
            data = stage.model_dump(mode="json", exclude={"distribution"})
            rows.append({"section": "stage", **data, **stage.distribution})
        for section, lines in (
            ("speed_to_lead", [self.speed_to_lead]),
            ("speed_by_team", self.speed_by_team),
            ("speed_by_source", self.speed_by_source),
        ):
            rows += [{"section": section, **line.model_dump(mode="json")} for line in lines]
        for section, accept in (
            ("acceptance", [self.acceptance]),
            ("acceptance_by_team", self.acceptance_by_team),
        ):
            rows += [{"section": section, **line.model_dump(mode="json")} for line in accept]
        for reason in self.rejection_reasons:
            rows.append({"section": "rejection_reason", **reason.model_dump(mode="json")})
        for outcome in self.recycled.outcomes:
            rows.append({"section": "recycled", **outcome.model_dump(mode="json")})
        return rows


def acceptance_line(
    name: str, handoffs: int, accepted: int, rejected: int, expired: int
) -> AcceptanceLine:
    """Acceptance and rejection rates over all handoffs (open ones count in the whole)."""
    return AcceptanceLine(
        name=name,
        handoffs=handoffs,
        accepted=accepted,
        rejected=rejected,
        expired=expired,
        open=handoffs - accepted - rejected - expired,
        acceptance_rate=rate(accepted, handoffs),
        rejection_rate=rate(rejected, handoffs),
    )


def reasons(counts: Sequence[tuple[str | None, int]]) -> list[ReasonLine]:
    """Reasons, most frequent first, each with its share of the total."""
    total = sum(count for _, count in counts)
    ordered = sorted(counts, key=lambda item: (-item[1], item[0] or ""))
    return [
        ReasonLine(reason=reason or "(no reason given)", count=count, share=rate(count, total))
        for reason, count in ordered
    ]


__all__ += ["acceptance_line", "reasons"]
