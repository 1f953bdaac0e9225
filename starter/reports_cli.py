"""``revops reports``: SLA attainment and the revenue reports, for people, scripts and sheets.

``sla`` reads the handoff SLA records (``store.sla``). ``funnel``, ``velocity``,
``attribution``, ``journeys`` and ``forecast`` are the store's report queries
(``store.reports.ReportBook``), the same ones the dashboard renders. Each takes a period
(``--since``, ``--until``: UTC dates, both included), ``--segment`` (a list) and, where credit
is given, ``--model`` (an attribution model of ``config/attribution.yaml``); ``--json`` prints
one JSON document (docs/cli.md), ``--csv`` the report's rows as CSV.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Protocol, TypeVar

import typer
from rich.table import Table

from analysis.attribution import AttributionLine, AttributionReport, OpportunityCredit
from analysis.forecast import ForecastReport
from analysis.funnel import FunnelGroup, FunnelReport, SpeedLine, VelocityReport
from analysis.journey_metrics import JourneysReport
from analysis.report_window import ReportWindow, seconds_text
from analysis.sla_report import SlaLine, SlaReport, sla_report
from definitions import HANDOFF, Definitions
from lifecycle.stages import Stage
from revops.errors import ConfigError
from starter.common import console, fail, open_store, settings
from starter.hygiene_cli import register as register_hygiene
from starter.output import JsonFlag, emit
from starter.report_source import open_reports
from store.sla import SlaBook

__all__ = ["reports_app", "window_of"]

reports_app = typer.Typer(
    help="Reports: funnel, velocity, attribution, journeys, forecast, SLA attainment.",
    no_args_is_help=True,
)

V = TypeVar("V", bound="CsvView")


class CsvView(Protocol):
    """A report that can print itself as CSV rows."""

    def csv_rows(self) -> list[dict[str, Any]]: ...


Since = Annotated[str | None, typer.Option(help="First day of the period, YYYY-MM-DD (UTC).")]
Until = Annotated[
    str | None, typer.Option(help="Last day of the period, YYYY-MM-DD (UTC; default: today).")
]
Segment = Annotated[str | None, typer.Option(help="Only contacts of this segment (a list).")]
Model = Annotated[
    str | None, typer.Option(help="Attribution model (default: the definition's default_model).")
]
CsvFlag = Annotated[bool, typer.Option("--csv", help="Print the report's rows as CSV instead.")]


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from exc


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _since(value: str | None) -> datetime | None:
    day = _day(value, "--since")
    return _midnight(day) if day else None


def window_of(
    since: str | None,
    until: str | None,
    segment: str | None,
    *,
    default_span: timedelta | None = None,
) -> ReportWindow:
    """The report window the options ask for (``until`` is the end of that day)."""
    now = datetime.now(UTC)
    last = _day(until, "--until")
    end = _midnight(last + timedelta(days=1)) if last else now
    start = _since(since)
    if start is None and default_span is not None:
        start = end - default_span
    if start is not None and start >= end:
        raise typer.BadParameter("must be on or before --until", param_hint="--since")
    return ReportWindow(since=start, until=end, segment=segment or None, generated_at=now)


def _show(view: V, as_json: bool, as_csv: bool, render: Callable[[V], None]) -> None:
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--csv")
    if as_csv:
        rows = view.csv_rows()
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    emit(view, as_json, render)


@reports_app.command("funnel")
def reports_funnel(
    since: Since = None,
    until: Until = None,
    segment: Segment = None,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
) -> None:
    """Conversion between stages and MQL to customer, by segment, source, journey, cohort."""
    window = window_of(since, until, segment)
    book = open_reports(settings(), segment)
    _show(book.funnel(window), as_json, as_csv, _print_funnel)


@reports_app.command("velocity")
def reports_velocity(
    since: Since = None,
    until: Until = None,
    segment: Segment = None,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
) -> None:
    """Time in each stage, speed-to-lead, acceptance and rejection, recycled leads."""
    window = window_of(since, until, segment)
    book = open_reports(settings(), segment)
    _show(book.velocity(window), as_json, as_csv, _print_velocity)


@reports_app.command("attribution")
def reports_attribution(
    since: Since = None,
    until: Until = None,
    segment: Segment = None,
    model: Model = None,
    opportunity: Annotated[
        str | None, typer.Option(help="Show how the model splits this one opportunity.")
    ] = None,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
) -> None:
    """Pipeline and revenue credited to channels, campaigns, journeys and accounts."""
    window = window_of(since, until, segment)
    book = open_reports(settings(), segment, model)
    if opportunity is None:
        _show(book.attribution(window, model), as_json, as_csv, _print_attribution)
        return
    found = book.opportunity_credits(window, opportunity, model)
    if found is None:
        fail(f"no opportunity {opportunity!r}", 1)
    _show(found, as_json, as_csv, _print_credits)


@reports_app.command("journeys")
def reports_journeys(
    since: Since = None,
    until: Until = None,
    segment: Segment = None,
    model: Model = None,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
) -> None:
    """Sends, opens, clicks, conversions and attributed pipeline per journey."""
    window = window_of(since, until, segment)
    book = open_reports(settings(), segment, model)
    _show(book.journeys(window, model), as_json, as_csv, _print_journeys)


@reports_app.command("forecast")
def reports_forecast(
    since: Annotated[
        str | None,
        typer.Option(help="Start of the trailing window (default: forecast_window before it)."),
    ] = None,
    until: Until = None,
    segment: Segment = None,
    as_json: JsonFlag = False,
    as_csv: CsvFlag = False,
) -> None:
    """Current MQLs and SQLs x trailing conversion to customer x average deal size."""
    book = open_reports(settings(), segment)
    span = book.definition.forecast_window
    window = window_of(since, until, segment, default_span=span)
    _show(book.forecast(window), as_json, as_csv, _print_forecast)


# ---- for people ----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _window_text(since: datetime | None, until: datetime, segment: str | None) -> str:
    start = f"{since:%Y-%m-%d}" if since else "the start"
    end = f"{until - timedelta(microseconds=1):%Y-%m-%d}"
    where = f", segment {segment}" if segment else ""
    return f"{start} to {end}{where}"


_SHOWN = (Stage.LEAD, Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)


def _funnel_table(title: str, groups: list[FunnelGroup]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for stage in _SHOWN:
        table.add_column("Opp" if stage is Stage.OPPORTUNITY else stage.value, justify="right")
    table.add_column("MQL>Cust", justify="right")
    for group in groups:
        cells = [
            f"{line.reached}" + (f" {_pct(line.conversion)}" if line.conversion is not None else "")
            for line in group.stages
            if line.stage in _SHOWN
        ]
        table.add_row(group.key, *cells, _pct(group.mql_to_customer_rate))
    return table


def _print_funnel(report: FunnelReport) -> None:
    console.print(
        f"Funnel, {_window_text(report.since, report.until, report.segment)}: passes that "
        "reached each stage, and the share that went on to the next",
        highlight=False,
    )
    console.print(_funnel_table("Overall", [report.overall]))
    for title, groups in (
        ("By segment", report.by_segment),
        ("By first-touch source", report.by_source),
        ("By journey", report.by_journey),
        ("By monthly cohort", report.by_cohort),
    ):
        if groups:
            console.print(_funnel_table(title, groups))


def _speed_table(title: str, lines: list[SpeedLine]) -> Table:
    table = Table("", "handoffs", "touched", "median", "p90", title=title, title_justify="left")
    for line in lines:
        table.add_row(
            line.name,
            str(line.handoffs),
            str(line.touched),
            seconds_text(line.median.total_seconds() if line.median else None),
            seconds_text(line.p90.total_seconds() if line.p90 else None),
        )
    return table


def _print_velocity(report: VelocityReport) -> None:
    console.print(
        f"Velocity, {_window_text(report.since, report.until, report.segment)}", highlight=False
    )
    stages = Table("stage", "stays", "in it now", "median", "p90", title="Time in stage")
    for stay in report.stages:
        stages.add_row(
            stay.stage.value,
            str(stay.stays),
            str(stay.in_stage_now),
            seconds_text(stay.median.total_seconds() if stay.median else None),
            seconds_text(stay.p90.total_seconds() if stay.p90 else None),
        )
    console.print(stages)
    console.print(
        _speed_table("Speed-to-lead by team", [report.speed_to_lead, *report.speed_by_team])
    )
    console.print(_speed_table("Speed-to-lead by source", report.speed_by_source))
    accept = Table(
        "team", "handoffs", "accepted", "rejected", "expired", "open", title="Acceptance"
    )
    for line in [report.acceptance, *report.acceptance_by_team]:
        accept.add_row(
            line.name,
            str(line.handoffs),
            f"{line.accepted} ({_pct(line.acceptance_rate)})",
            f"{line.rejected} ({_pct(line.rejection_rate)})",
            str(line.expired),
            str(line.open),
        )
    console.print(accept)
    for reason in report.rejection_reasons:
        console.print(f"  rejected: {reason.reason}: {reason.count} ({_pct(reason.share)})")
    recycled = report.recycled
    console.print(
        f"Recycled: {recycled.recycles} recycles of {recycled.contacts} contacts; since then "
        f"{recycled.reached_mql_again} MQL again, {recycled.became_customers} customers, "
        f"{recycled.recycled_again} recycled again",
        highlight=False,
    )
    for outcome in recycled.outcomes:
        console.print(
            f"  had reached {outcome.from_stage.value}, then {outcome.became.value}: "
            f"{outcome.count}"
        )


def _credit_table(title: str, lines: list[AttributionLine]) -> Table:
    table = Table("", "opps", "pipeline", "won", "revenue", title=title, title_justify="left")
    for line in lines:
        table.add_row(
            line.name,
            str(line.opportunities),
            _money(line.pipeline),
            str(line.won),
            _money(line.revenue),
        )
    return table


def _print_attribution(report: AttributionReport) -> None:
    console.print(
        f"Attribution ({report.model}), {_window_text(report.since, report.until, report.segment)}"
        f": {report.opportunities} opportunities created, pipeline {_money(report.pipeline)}; "
        f"{report.won} won, revenue {_money(report.revenue)}",
        highlight=False,
    )
    for title, lines in (
        ("By channel", report.channels),
        ("By campaign", report.campaigns),
        ("By journey", report.journeys),
        ("By account", report.accounts[:20]),
    ):
        if lines:
            console.print(_credit_table(title, lines))


def _print_credits(credit: OpportunityCredit) -> None:
    console.print(
        f"{credit.opportunity_id} ({credit.model}): amount {_money(credit.amount)}, created "
        f"{credit.created_at:%Y-%m-%d}, contacts {', '.join(credit.contacts) or '-'}",
        highlight=False,
    )
    table = Table("at", "contact", "event", "channel", "campaign", "weight", "credit")
    for touch in credit.touches:
        table.add_row(
            f"{touch.at:%Y-%m-%d %H:%M}" if touch.at else "-",
            touch.contact_id or "-",
            touch.event or "-",
            touch.channel,
            touch.campaign or "-",
            f"{touch.weight:.4f}",
            _money(touch.credit),
        )
    console.print(table)


def _print_journeys(report: JourneysReport) -> None:
    console.print(
        f"Journeys, {_window_text(report.since, report.until, report.segment)} "
        f"(pipeline under {report.model})",
        highlight=False,
    )
    table = Table("journey", "sends", "to", "opened", "clicked", "goals", "pipeline", "revenue")
    for line in report.journeys:
        table.add_row(
            line.journey,
            str(line.sends),
            str(line.recipients),
            f"{line.openers} ({_pct(line.open_rate)})",
            f"{line.clickers} ({_pct(line.click_rate)})",
            str(line.conversions),
            _money(line.pipeline),
            _money(line.revenue),
        )
    console.print(table)


def _print_forecast(report: ForecastReport) -> None:
    console.print(
        f"Forecast from {_window_text(report.since, report.until, report.segment)}: "
        f"{report.deals_won} deals won, average {_money(report.average_deal_size)}",
        highlight=False,
    )
    table = Table("now", "leads", "reached then", "became customers", "conversion", "expected")
    for line in report.lines:
        table.add_row(
            line.stage,
            str(line.current),
            str(line.trailing_reached),
            str(line.trailing_won),
            _pct(line.conversion),
            f"{line.expected_customers:g} customers, {_money(line.expected_revenue)}",
        )
    console.print(table)
    console.print(
        f"Expected: {report.expected_customers:g} customers, "
        f"revenue {_money(report.expected_revenue)}",
        highlight=False,
    )


# ---- SLA ---------------------------------------------------------------------------------


@reports_app.command("sla")
def reports_sla(
    since: Annotated[
        str | None, typer.Option(help="Only handoffs whose MQL is on or after this date (UTC).")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Attainment below this is a capacity problem (default: handoff)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """SLA attainment per team and rep, time to first touch, capacity problems flagged."""
    start = _since(since)
    if target is not None and not 0 < target <= 1:
        raise typer.BadParameter("must be between 0 and 1, e.g. 0.8", param_hint="--target")
    current = settings()
    store = open_store(current)
    if target is None:
        try:
            target = Definitions.of(store, current).get(HANDOFF).attainment_target
        except ConfigError as exc:
            fail(str(exc), 2)
    book = SlaBook(store)
    records = book.records(since=start)
    open_reports(current, None)  # brings the first-touch extract current: the leads' sources
    sources = book.sources(since=start)
    report = sla_report(records, datetime.now(UTC), target=target, since=start, sources=sources)
    emit(report, as_json, _print_sla)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = value.total_seconds() / 60
    if minutes < 90:
        return f"{minutes:.0f}m"
    hours = minutes / 60
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _sla_table(title: str, label: str, lines: list[SlaLine], target: float) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    for column in ("turns", "met", "breached", "open", "attainment", "median 1st touch"):
        table.add_column(column, justify="right")
    table.add_column("p90 1st touch", justify="right")
    table.add_column("")
    for line in lines:
        flag = f"[red]capacity problem (< {target:.0%})[/red]" if line.capacity_problem else ""
        table.add_row(
            line.name,
            str(line.turns),
            str(line.met),
            str(line.breached),
            str(line.open),
            _pct(line.attainment),
            _duration(line.median_first_touch),
            _duration(line.p90_first_touch),
            flag,
        )
    return table


def _print_sla(report: SlaReport) -> None:
    window = f"since {report.since:%Y-%m-%d}" if report.since else "all time"
    overall = report.overall
    console.print(
        f"SLA attainment, {window}: {report.handoffs} handoffs, "
        f"{_pct(overall.attainment)} met ({overall.met} of {overall.met + overall.breached} "
        f"decided, {overall.open} open); first touch median {_duration(overall.median_first_touch)}"
        f", p90 {_duration(overall.p90_first_touch)}",
        highlight=False,
    )
    if report.stages:
        title = "Per stage (sdr: MQL to first touch; ae: qualified to the AE's first touch)"
        console.print(_sla_table(title, "stage", report.stages, report.target))
    if report.sources:
        title = "Speed-to-lead per source (first-touch channel; SDR stage)"
        console.print(_sla_table(title, "source", report.sources, report.target))
    console.print(_sla_table("Per team", "team", report.teams, report.target))
    console.print(_sla_table("Per rep", "rep", report.reps, report.target))
    flagged = [line.name for line in report.teams if line.capacity_problem]
    if flagged:
        console.print(
            f"[red]Capacity problem:[/red] {', '.join(flagged)} under {report.target:.0%} "
            "attainment: add reps or capacity, or route fewer leads there.",
            highlight=False,
        )


register_hygiene(reports_app)
