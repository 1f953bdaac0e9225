"""The revenue reports' queries: funnel, velocity, attribution, journeys, forecast, list sizes.

``ReportBook`` is what ``revops reports ...`` and the dashboard call; both render the views it
returns. Every number is an SQL aggregation over the summary tables (``store.funnel``, kept
current as stage history is recorded; ``store.report_extract``, brought current from the
outbox by ``refresh``) and the store's own records (SLA records, the send ledger, list
memberships, journey conversions). Python only does arithmetic on the aggregates
(``analysis.funnel``, ``analysis.forecast``...).

Percentiles are nearest-rank, computed with window functions (``ROW_NUMBER`` against
``COUNT``) so SQLite and PostgreSQL give the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Index,
    and_,
    case,
    distinct,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.sql import Select, Subquery

from analysis.attribution import (
    AttributionDefinition,
    AttributionLine,
    AttributionReport,
    OpportunityCredit,
    TouchCredit,
)
from analysis.forecast import ForecastInput, ForecastReport, forecast_report
from analysis.funnel import (
    DISTRIBUTION_BUCKETS,
    FunnelReport,
    GroupCounts,
    Recycled,
    RecycleLine,
    SpeedLine,
    StageTime,
    VelocityReport,
    acceptance_line,
    funnel_report,
    reasons,
)
from analysis.journey_metrics import JourneyLine, JourneysReport, ListSeries, ListSizes, StepLine
from analysis.report_window import ReportWindow, rate
from lifecycle.stages import STAGES, Stage
from store.attribution import credits_query, opportunities_query, segment_members
from store.effects import SendRow
from store.funnel import STAGE_BITS, PassRow, SpellRow, reached_column, rebuild_funnel
from store.history import ListMembershipRow
from store.journeys import ConversionRow
from store.repo import Store
from store.report_extract import (
    NO_SOURCE,
    REPORT_TABLES,
    EmailEventRow,
    OpportunityContactRow,
    ReportContactRow,
    ReportStateRow,
    refresh_extracts,
)
from store.schema import StageHistoryRow
from store.sla import SlaRow
from store.sqlfn import day_of, seconds_between

__all__ = ["ReportBook"]

Index(  # covering: journey reports read sends from the index only
    "ix_sends_journey_report",
    SendRow.journey,
    SendRow.step,
    SendRow.status,
    SendRow.sent_at,
    SendRow.contact_id,
)

_LAST = len(STAGES) - 1
_ANALYZE_AFTER = 20_000
"""Outbox rows read by one refresh after which PostgreSQL's statistics are renewed."""
_NO_SEGMENT = "(no segment)"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _within(column: Any, window: ReportWindow) -> ColumnElement[bool]:
    return and_(column >= window.start, column < window.until)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return case((condition, 1), else_=0)


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=round(value)) if value is not None else None


class ReportBook:
    """Report queries over one store, with the attribution definition in force."""

    def __init__(self, store: Store, definition: AttributionDefinition) -> None:
        self._store = store
        self._sessions = store._sessions
        self.definition = definition

    # ---- keeping the summaries current ---------------------------------------------------

    def refresh(self) -> None:
        """Bring the summary tables up to date (cheap when they are; see ``report_extract``)."""
        now = datetime.now(UTC)
        more, read = True, 0
        while more:
            with self._sessions.begin() as session:
                more, batch = refresh_extracts(session, self.definition, now)
                read += batch
        with self._sessions.begin() as session:
            history = session.scalar(select(func.count()).select_from(StageHistoryRow)) or 0
            spells = session.scalar(select(func.count()).select_from(SpellRow)) or 0
            rebuilt = history != spells  # never built, or history written by an older release
            if rebuilt:
                rebuild_funnel(session, None)
                state = session.get(ReportStateRow, "funnel")
                if state is None:
                    session.add(ReportStateRow(name="funnel", position=history, updated_at=now))
                else:
                    state.position, state.updated_at = history, now
        if (rebuilt or read > _ANALYZE_AFTER) and self._store.engine.dialect.name == "postgresql":
            # Fresh statistics, so the planner does not take a big new table for an empty one.
            with self._store.engine.begin() as connection:
                connection.execute(text(f"ANALYZE {', '.join(REPORT_TABLES)}"))

    # ---- shared pieces ---------------------------------------------------------------------

    def _segment_label(self) -> Subquery:
        """Each contact's segment: the first of the definition's segment lists it was on."""
        names = list(self.definition.segments) or ["(none)"]
        order = case({name: index for index, name in enumerate(names)}, value=_list_name())
        ranked = (
            select(ListMembershipRow.contact_id, func.min(order).label("position"))
            .where(ListMembershipRow.list_name.in_(names))
            .group_by(ListMembershipRow.contact_id)
            .subquery("segment_rank")
        )
        label = case({index: name for index, name in enumerate(names)}, value=ranked.c.position)
        return select(ranked.c.contact_id, label.label("segment")).subquery("segments")

    def _rows(self, query: Any) -> list[Any]:
        with self._sessions() as session:
            return list(session.execute(query).all())

    def _spread(
        self, source: Subquery, groups: Sequence[str], value: str, *extra: Any
    ) -> list[Any]:
        """Per group of ``source``: rows, non-NULL values, nearest-rank median and p90 of
        ``value``, then ``extra(v)`` aggregates of the value column ``v``; one statement."""
        keys = [source.c[name] for name in groups]
        col = source.c[value]
        ranked = (
            select(
                *(key.label(f"g{n}") for n, key in enumerate(keys)),
                col.label("v"),
                func.row_number()
                .over(partition_by=keys, order_by=col.asc().nulls_last())
                .label("r"),
                func.count(col).over(partition_by=keys).label("n"),
            )
        ).subquery("ranked")
        r = ranked.c
        by = [r[f"g{n}"] for n in range(len(keys))]
        query = select(
            *by,
            func.count(),
            func.count(r.v),
            func.min(case((r.v.is_not(None) & (r.r * 100 >= r.n * 50), r.v))),
            func.min(case((r.v.is_not(None) & (r.r * 100 >= r.n * 90), r.v))),
            *(make(r.v) for make in extra),
        ).group_by(*by)
        return self._rows(query)

    # ---- funnel --------------------------------------------------------------------------

    def funnel(self, window: ReportWindow) -> FunnelReport:
        """Conversion between consecutive stages and MQL to customer, overall and by group.

        One statement: each pass's 0/1 flags (reached, entered, advanced per stage) and its
        groups are computed once in a CTE, then summed five ways and stacked.
        """
        p = PassRow
        reached = [getattr(p, reached_column(stage)) for stage in STAGES]
        flags: list[ColumnElement[Any]] = []
        for index, stage in enumerate(STAGES):
            inside = _within(reached[index], window)
            flags.append(_flag(inside))
            flags.append(_flag(inside & (p.entered_mask.op("&")(STAGE_BITS[stage]) != 0)))
            if index < _LAST:
                flags.append(_flag(inside & reached[index + 1].is_not(None)))
        flags.append(_flag(_within(p.reached_mql, window) & p.reached_customer.is_not(None)))
        segments = self._segment_label()
        passes = (
            select(
                p.contact_id,
                p.cohort,
                func.coalesce(segments.c.segment, _NO_SEGMENT).label("segment"),
                func.coalesce(ReportContactRow.channel, NO_SOURCE).label("source"),
                *(flag.label(f"f{n}") for n, flag in enumerate(flags)),
            )
            .outerjoin(segments, segments.c.contact_id == p.contact_id)
            .outerjoin(ReportContactRow, ReportContactRow.contact_id == p.contact_id)
            .where(  # a pass whose last entry is before the period reached nothing in it
                p.started_at < window.until,
                p.last_at >= window.start,
                self._in_segment(p.contact_id, window),
            )
            .cte("flagged")
        )
        sums = [func.sum(passes.c[f"f{n}"]) for n in range(len(flags))]
        journeys = (
            select(SendRow.contact_id, SendRow.journey)
            .where(SendRow.journey.is_not(None))
            .distinct()
            .subquery("journey_contacts")
        )
        parts = [select(literal("all"), literal("all"), *sums)]
        for by in ("segment", "source", "cohort"):
            key = passes.c[by]
            parts.append(select(literal(by), key, *sums).group_by(key))
        parts.append(
            select(literal("journey"), journeys.c.journey, *sums)
            .join(journeys, journeys.c.contact_id == passes.c.contact_id)
            .group_by(journeys.c.journey)
        )
        found: dict[str, list[GroupCounts]] = defaultdict(list)
        for row in self._rows(union_all(*parts)):
            if row[2] is not None:  # "all" over no pass sums to NULLs
                found[row[0]].append(_group_counts(row[1:]))
        order = {name: index for index, name in enumerate(self.definition.segments)}
        groups = {
            "segment": sorted(
                found["segment"], key=lambda g: (order.get(g.key, len(order)), g.key)
            ),
            "source": sorted(found["source"], key=lambda g: (-g.reached[0], g.key)),
            "journey": sorted(found["journey"], key=lambda g: g.key),
            "cohort": sorted(found["cohort"], key=lambda g: g.key),
        }
        empty = GroupCounts("all", [0] * len(STAGES), [0] * len(STAGES), [0] * _LAST, 0)
        return funnel_report(window, (found["all"] or [empty])[0], groups)

    # ---- velocity ------------------------------------------------------------------------

    def velocity(self, window: ReportWindow) -> VelocityReport:
        """Time in each stage, speed-to-lead, acceptance and rejection, recycled leads."""
        return VelocityReport(
            generated_at=window.generated_at,
            since=window.since,
            until=window.until,
            segment=window.segment,
            stages=self._stage_times(window),
            **self._speed(window),
            **self._acceptance(window),
            recycled=self._recycled(window),
        )

    def _in_segment(self, column: Any, window: ReportWindow) -> ColumnElement[bool]:
        if window.segment is None:
            return literal(True)
        found: ColumnElement[bool] = column.in_(segment_members(window.segment))
        return found

    def _stage_times(self, window: ReportWindow) -> list[StageTime]:
        s = SpellRow
        spells = (
            select(s.stage_rank, s.seconds)
            .where(_within(s.entered_at, window), self._in_segment(s.contact_id, window))
            .subquery("spells")
        )
        bounds = [0.0] + [bound for _, bound in DISTRIBUTION_BUCKETS]

        def bucket(low: float, high: float) -> Callable[[Any], ColumnElement[Any]]:
            def count(v: Any) -> ColumnElement[Any]:
                inside = v >= low if high == float("inf") else (v >= low) & (v < high)
                return func.sum(case((inside, 1), else_=0))

            return count

        buckets = [bucket(bounds[n], bounds[n + 1]) for n in range(len(DISTRIBUTION_BUCKETS))]
        found = {row[0]: row for row in self._spread(spells, ["stage_rank"], "seconds", *buckets)}
        lines = []
        for stage in STAGES:
            row = found.get(stage.rank)
            if row is None:
                continue
            _, total, stays, median, p90, *counts = row
            lines.append(
                StageTime(
                    stage=stage,
                    stays=int(stays),
                    in_stage_now=int(total) - int(stays),
                    median=_seconds(median),
                    p90=_seconds(p90),
                    distribution={
                        label: int(count or 0)
                        for (label, _), count in zip(DISTRIBUTION_BUCKETS, counts, strict=True)
                    },
                )
            )
        return lines

    def _speed(self, window: ReportWindow) -> dict[str, Any]:
        sla, src = SlaRow, ReportContactRow
        delay = seconds_between(sla.first_contact_date, sla.mql_date)
        handoffs = (
            select(
                func.coalesce(sla.team, "(no team)").label("team"),
                func.coalesce(src.channel, NO_SOURCE).label("source"),
                case((delay < 0, 0.0), else_=delay).label("seconds"),
            )
            .select_from(sla)
            .outerjoin(src, src.contact_id == sla.contact_id)
            .where(_within(sla.mql_date, window), self._in_segment(sla.contact_id, window))
            .cte("handoffs")
        )
        h = handoffs.c
        stacked = union_all(
            select(literal("all").label("dim"), literal("all teams").label("g"), h.seconds),
            select(literal("team"), h.team, h.seconds),
            select(literal("source"), h.source, h.seconds),
        ).subquery("stacked")
        lines: dict[str, list[SpeedLine]] = defaultdict(list)
        for dim, name, total, touched, median, p90 in self._spread(
            stacked, ["dim", "g"], "seconds"
        ):
            lines[dim].append(
                SpeedLine(
                    name=name,
                    handoffs=int(total),
                    touched=int(touched),
                    median=_seconds(median),
                    p90=_seconds(p90),
                )
            )
        empty = SpeedLine(name="all teams", handoffs=0, touched=0, median=None, p90=None)
        return {
            "speed_to_lead": (lines["all"] or [empty])[0],
            "speed_by_team": sorted(lines["team"], key=lambda line: line.name),
            "speed_by_source": sorted(lines["source"], key=lambda line: line.name),
        }

    def _acceptance(self, window: ReportWindow) -> dict[str, Any]:
        sla = SlaRow
        accepted = or_(
            sla.state.in_(("accepted", "closed")), sla.outcome.in_(("closed_won", "closed_lost"))
        )
        team = func.coalesce(sla.team, "(no team)")
        chosen = and_(_within(sla.mql_date, window), self._in_segment(sla.contact_id, window))
        query = (
            select(
                team,
                func.count(),
                _count(accepted),
                _count(sla.outcome == "rejected"),
                _count(sla.outcome == "expired"),
            )
            .where(chosen)
            .group_by(team)
        )
        teams = [
            acceptance_line(*row[:1], *(int(v or 0) for v in row[1:])) for row in self._rows(query)
        ]
        teams.sort(key=lambda line: line.name)
        total = acceptance_line(
            "all teams",
            *(
                sum(getattr(t, f) for t in teams)
                for f in ("handoffs", "accepted", "rejected", "expired")
            ),
        )
        why = self._rows(
            select(sla.outcome_reason, func.count())
            .where(chosen, sla.outcome == "rejected")
            .group_by(sla.outcome_reason)
        )
        return {
            "acceptance": total,
            "acceptance_by_team": teams,
            "rejection_reasons": reasons([(reason, int(count)) for reason, count in why]),
        }

    def _recycled(self, window: ReportWindow) -> Recycled:
        p = PassRow
        before = PassRow.__table__.alias("before")
        chosen = and_(
            p.pass_no >= 1, _within(p.started_at, window), self._in_segment(p.contact_id, window)
        )
        (row,) = self._rows(
            select(
                func.count(),
                func.count(distinct(p.contact_id)),
                _count(p.recycled_at.is_not(None)),
                _count(p.reached_mql.is_not(None)),
                _count(p.reached_customer.is_not(None)),
            ).where(chosen)
        )
        outcomes = self._rows(
            select(before.c.top_rank, p.top_rank, func.count())
            .join(
                before,
                and_(before.c.contact_id == p.contact_id, before.c.pass_no == p.pass_no - 1),
            )
            .where(chosen)
            .group_by(before.c.top_rank, p.top_rank)
            .order_by(before.c.top_rank, p.top_rank)
        )
        return Recycled(
            recycles=int(row[0] or 0),
            contacts=int(row[1] or 0),
            recycled_again=int(row[2] or 0),
            reached_mql_again=int(row[3] or 0),
            became_customers=int(row[4] or 0),
            outcomes=[
                RecycleLine(from_stage=STAGES[was], became=STAGES[now], count=int(count))
                for was, now, count in outcomes
            ],
        )

    # ---- attribution -----------------------------------------------------------------------

    def _credits(
        self, window: ReportWindow, model: str | None, opportunity: str | None = None
    ) -> tuple[str, Select[Any]]:
        name, chosen = self.definition.model_named(model)
        credits = credits_query(
            chosen,
            lookback_seconds=self.definition.lookback.total_seconds(),
            since=window.start,
            until=window.until,
            segment=window.segment,
            opportunity=opportunity,
        )
        return name, credits

    def attribution(self, window: ReportWindow, model: str | None = None) -> AttributionReport:
        """Pipeline and revenue credited to channels, campaigns, journeys and accounts.

        One statement: the credits are a CTE (computed once, both databases materialize a CTE
        read several times) grouped five ways and stacked with ``UNION ALL``.
        """
        name, query = self._credits(window, model)
        c = query.cte("credits").c
        created = _within(c.created_at, window)
        won = _within(c.won_at, window)
        measures = (
            func.count(distinct(case((created, c.key)))),
            func.coalesce(func.sum(case((created, c.amount * c.weight))), 0.0),
            func.count(distinct(case((won, c.key)))),
            func.coalesce(func.sum(case((won, c.amount * c.weight))), 0.0),
        )
        breakdowns: dict[str, tuple[ColumnElement[Any], ...]] = {
            "total": (literal("total"),),
            "channels": (c.channel,),
            "campaigns": (func.coalesce(c.campaign, "(no campaign)"),),
            "journeys": (c.journey,),
            "accounts": (c.account,),
        }
        parts = []
        for by, (key,) in breakdowns.items():
            part = select(literal(by).label("by"), key.label("name"), *measures)
            if by == "journeys":
                part = part.where(c.journey.is_not(None))
            parts.append(part if by == "total" else part.group_by(key))
        found: dict[str, list[AttributionLine]] = defaultdict(list)
        for row in self._rows(union_all(*parts)):
            found[row[0]].append(_attribution_line(str(row[1]), row[2:]))

        def lines(by: str) -> list[AttributionLine]:
            return sorted(found[by], key=lambda line: (-line.pipeline - line.revenue, line.name))

        (total,) = found["total"] or [_attribution_line("total", (0, 0, 0, 0))]
        return AttributionReport(
            generated_at=window.generated_at,
            since=window.since,
            until=window.until,
            segment=window.segment,
            model=name,
            opportunities=total.opportunities,
            pipeline=total.pipeline,
            won=total.won,
            revenue=total.revenue,
            channels=lines("channels"),
            campaigns=lines("campaigns"),
            journeys=lines("journeys"),
            accounts=lines("accounts"),
        )

    def opportunity_credits(
        self, window: ReportWindow, opportunity: str, model: str | None = None
    ) -> OpportunityCredit | None:
        """Each touchpoint's share of one opportunity under one model (None: no such one)."""
        name, query = self._credits(window, model, opportunity)
        credits = query.subquery("credits")
        c = credits.c
        rows = self._rows(select(credits).order_by(c.at, c.event_id))
        if not rows:
            return None
        first = rows[0]._mapping
        members = select(OpportunityContactRow.contact_id).where(
            OpportunityContactRow.key == opportunity
        )
        return OpportunityCredit(
            opportunity_id=opportunity,
            model=name,
            amount=float(first["amount"]),
            created_at=_aware(first["created_at"]) or window.until,
            won_at=_aware(first["won_at"]),
            contacts=sorted(contact for (contact,) in self._rows(members)),
            touches=[
                TouchCredit(
                    at=_aware(row.at),
                    contact_id=row.contact_id,
                    event=row.event,
                    channel=row.channel,
                    campaign=row.campaign,
                    journey=row.journey,
                    weight=round(float(row.weight), 6),
                    credit=round(float(row.weight) * float(row.amount), 2),
                )
                for row in rows
            ],
        )

    def credit_sums(self, window: ReportWindow, model: str | None = None) -> dict[str, float]:
        """Sum of credits per opportunity (each must equal its amount); for checks and tests."""
        _, credits = self._credits(window, model)
        c = credits.subquery("credits").c
        query = select(c.key, func.sum(c.amount * c.weight)).group_by(c.key)
        return {key: float(total) for key, total in self._rows(query)}

    # ---- journeys -------------------------------------------------------------------------

    def journeys(
        self,
        window: ReportWindow,
        model: str | None = None,
        attribution: AttributionReport | None = None,
    ) -> JourneysReport:
        """Sends, opens, clicks, conversions and attributed pipeline per journey (pass the
        window's ``attribution`` when it is at hand, to spare computing it again)."""
        s, e = SendRow, EmailEventRow
        sent = and_(
            s.journey.is_not(None),
            s.status == "sent",
            _within(s.sent_at, window),
            self._in_segment(s.contact_id, window),
        )
        sends = {
            j: (int(n), int(r))
            for j, n, r in self._rows(
                select(s.journey, func.count(), func.count(distinct(s.contact_id)))
                .where(sent)
                .group_by(s.journey)
            )
        }
        seen = and_(
            e.journey.is_not(None),
            _within(e.at, window),
            self._in_segment(e.contact_id, window),
        )
        engaged: dict[tuple[str, str], tuple[int, int]] = {
            (j, kind): (int(n), int(r))
            for j, kind, n, r in self._rows(
                select(e.journey, e.kind, func.count(), func.count(distinct(e.contact_id)))
                .where(seen)
                .group_by(e.journey, e.kind)
            )
        }
        c = ConversionRow
        conversions = dict(
            self._rows(
                select(c.journey, func.count())
                .where(_within(c.converted_at, window), self._in_segment(c.contact_id, window))
                .group_by(c.journey)
            )
        )
        if attribution is None:
            attribution = self.attribution(window, model)
        credited = {line.name: line for line in attribution.journeys}
        names = sorted(set(sends) | {j for j, _ in engaged} | set(conversions) | set(credited))
        journeys = []
        for name in names:
            count, recipients = sends.get(name, (0, 0))
            opens, openers = engaged.get((name, "open"), (0, 0))
            clicks, clickers = engaged.get((name, "click"), (0, 0))
            credit = credited.get(name)
            journeys.append(
                JourneyLine(
                    journey=name,
                    sends=count,
                    recipients=recipients,
                    opens=opens,
                    openers=openers,
                    clicks=clicks,
                    clickers=clickers,
                    open_rate=rate(openers, recipients),
                    click_rate=rate(clickers, recipients),
                    conversions=int(conversions.get(name, 0)),
                    pipeline=credit.pipeline if credit else 0.0,
                    revenue=credit.revenue if credit else 0.0,
                )
            )
        journeys.sort(key=lambda line: (-line.sends, line.journey))
        return JourneysReport(
            generated_at=window.generated_at,
            since=window.since,
            until=window.until,
            segment=window.segment,
            model=attribution.model,
            journeys=journeys,
            steps=self._steps(sent, seen),
        )

    def _steps(self, sent: ColumnElement[bool], seen: ColumnElement[bool]) -> list[StepLine]:
        s, e = SendRow, EmailEventRow
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for journey, step, n in self._rows(
            select(s.journey, s.step, func.count()).where(sent).group_by(s.journey, s.step)
        ):
            counts[(journey, step or "?")]["sends"] = int(n)
        for journey, step, kind, n in self._rows(
            select(e.journey, e.step, e.kind, func.count())
            .where(seen)
            .group_by(e.journey, e.kind, e.step)
        ):
            counts[(journey, step or "?")][f"{kind}s"] = int(n)
        return [
            StepLine(
                journey=journey,
                step=step,
                sends=found.get("sends", 0),
                opens=found.get("opens", 0),
                clicks=found.get("clicks", 0),
            )
            for (journey, step), found in sorted(counts.items())
        ]

    # ---- forecast --------------------------------------------------------------------------

    def forecast(self, window: ReportWindow) -> ForecastReport:
        """Current MQLs and SQLs x trailing conversion to customer x average deal size."""
        p = PassRow
        in_segment = self._in_segment(p.contact_id, window)
        buckets = {"MQL": (Stage.MQL, Stage.SAL), "SQL": (Stage.SQL, Stage.OPPORTUNITY)}
        current = dict(
            self._rows(
                select(p.top_rank, func.count())
                .where(p.recycled_at.is_(None), in_segment)
                .group_by(p.top_rank)
            )
        )
        inputs = []
        for name, stages in buckets.items():
            reached = getattr(p, reached_column(stages[0]))
            (row,) = self._rows(
                select(
                    _count(_within(reached, window)),
                    _count(_within(reached, window) & p.reached_customer.is_not(None)),
                ).where(in_segment)
            )
            inputs.append(
                ForecastInput(
                    stage=name,
                    current=sum(int(current.get(stage.rank, 0)) for stage in stages),
                    trailing_reached=int(row[0] or 0),
                    trailing_won=int(row[1] or 0),
                )
            )
        opps = opportunities_query()
        won = _within(opps.c.won_at, window)
        if window.segment is not None:
            won = won & opps.c.primary_contact.in_(segment_members(window.segment))
        (deals,) = self._rows(select(func.count(), func.sum(opps.c.amount)).where(won))
        return forecast_report(window, inputs, int(deals[0] or 0), float(deals[1] or 0.0))

    # ---- list sizes --------------------------------------------------------------------------

    def list_sizes(self, window: ReportWindow, lists: Sequence[str] | None = None) -> ListSizes:
        """Members of each list at the end of each day of the window (at most 366 days)."""
        first = max(window.start, window.until - timedelta(days=366)).date()
        last = (window.until - timedelta(microseconds=1)).date()
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        m = ListMembershipRow
        scope = m.list_name.in_(lists) if lists is not None else literal(True)
        base = dict(
            self._rows(
                select(m.list_name, func.count())
                .where(scope, m.entered_at < start, or_(m.left_at.is_(None), m.left_at >= start))
                .group_by(m.list_name)
            )
        )
        moves: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for column, sign in ((m.entered_at, 1), (m.left_at, -1)):
            bucket = day_of(column)
            query = (
                select(m.list_name, bucket, func.count())
                .where(scope, column >= start, column < window.until)
                .group_by(m.list_name, bucket)
            )
            for name, when, count in self._rows(query):
                moves[name][when] += sign * int(count)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        series = []
        for name in sorted(set(base) | set(moves)):
            members, running = [], int(base.get(name, 0))
            for day in days:
                running += moves[name].get(day.isoformat(), 0)
                members.append(running)
            series.append(ListSeries(list_name=name, members=members))
        return ListSizes(days=days, lists=series)


def _list_name() -> Any:
    return ListMembershipRow.list_name


def _group_counts(row: Any) -> GroupCounts:
    values = [int(v or 0) for v in row[1:]]
    reached, entered, advanced = [], [], []
    position = 0
    for index in range(len(STAGES)):
        reached.append(values[position])
        entered.append(values[position + 1])
        position += 2
        if index < _LAST:
            advanced.append(values[position])
            position += 1
    return GroupCounts(str(row[0]), reached, entered, advanced, values[position])


def _attribution_line(name: str, values: Sequence[Any]) -> AttributionLine:
    return AttributionLine(
        name=name,
        opportunities=int(values[0] or 0),
        pipeline=round(float(values[1] or 0), 2),
        won=int(values[2] or 0),
        revenue=round(float(values[3] or 0), 2),
    )
