"""Report summary tables drawn from the event log: touchpoints, email engagement, sales activity.

Attribution, journey metrics and speed-to-lead by source read a small fraction of the event log
(UTM-tagged views, clicks, webinar attendance, opens, the sales webhook's activity). Scanning
the whole log and its JSON for every report would not stay fast, so ``refresh_extracts`` copies
those events, already classified, into tables of their own, incrementally:

- It follows the **outbox**, not the event table: every event that belongs to a contact gets an
  outbox row when it is accepted, and again when it changes hands (an anonymous visitor's
  history adopted by ``identify``, a merged contact's history moved by ``alias``). So one
  position per table (``report_state``) finds new events and re-attributed ones alike, and an
  upsert on the event id moves a touchpoint to its contact's survivor. Accepts are serialized
  (``store/accept.py``), so outbox ids become visible in order and no row is skipped.
- Touchpoints depend on the attribution definition (which events count, which channel a
  utm_medium is): when its fingerprint changes, touchpoints are rebuilt from the start.
- ``report_contacts`` keeps each contact's first marketing touch (its *source*).
- ``report_opportunities`` and ``report_opportunity_contacts`` are rebuilt from the sales events
  for every opportunity a batch names: dates, latest amount, primary and all contacts.

Everything is ``INSERT ... SELECT`` in the database, in batches of outbox ids; a refresh that
finds nothing new costs one indexed lookup per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Index,
    String,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from analysis.attribution import AttributionDefinition
from store.schema import Base, BigId, EventRow, OutboxRow
from store.sqlfn import json_number, json_text

__all__ = [
    "EMAIL_CLICKED",
    "EMAIL_OPENED",
    "NO_SOURCE",
    "OPPORTUNITY_ACTIVITIES",
    "REPORT_TABLES",
    "EmailEventRow",
    "ReportContactRow",
    "ReportStateRow",
    "SalesEventRow",
    "TouchpointRow",
    "opportunity_key",
    "refresh_extracts",
]

EMAIL_OPENED = "Email Opened"
EMAIL_CLICKED = "Email Clicked"
NO_SOURCE = "(no touch)"
"""The source of a contact with no marketing touchpoint."""
OPPORTUNITY_ACTIVITIES = ("opportunity_created", "stage_changed", "closed_won", "closed_lost")
_BATCH = 100_000
REPORT_TABLES = (
    "report_touchpoints",
    "report_email_events",
    "report_sales_events",
    "report_contacts",
    "report_opportunities",
    "report_opportunity_contacts",
    "report_spells",
    "report_passes",
)
"""Every summary table (``store.funnel``'s two included)."""
_PG_REPORT_LOCK = 0x7265706F7274  # "report"


class ReportStateRow(Base):
    """How far each extract has read the outbox, and the definition it was built with."""

    __tablename__ = "report_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigId, default=0)
    digest: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TouchpointRow(Base):
    """One marketing interaction of a contact, with its channel, campaign and journey."""

    __tablename__ = "report_touchpoints"
    __table_args__ = (Index("ix_report_touchpoints_contact_at", "contact_id", "at"),)

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    contact_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8))
    event: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200))
    medium: Mapped[str | None] = mapped_column(String(200))
    campaign: Mapped[str | None] = mapped_column(String(200))
    journey: Mapped[str | None] = mapped_column(String(128))


class EmailEventRow(Base):
    """An open or a click of a journey email ("Email Opened" / "Email Clicked")."""

    __tablename__ = "report_email_events"
    __table_args__ = (  # covering: journey reports read the index only
        Index("ix_report_email_journey", "journey", "kind", "step", "at", "contact_id"),
    )

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    contact_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8))
    journey: Mapped[str | None] = mapped_column(String(128))
    step: Mapped[str | None] = mapped_column(String(128))
    variant: Mapped[str | None] = mapped_column(String(64))


class SalesEventRow(Base):
    """One sales webhook activity, with its opportunity and amount when it has them."""

    __tablename__ = "report_sales_events"
    __table_args__ = (Index("ix_report_sales_opportunity", "opportunity_id"),)

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activity: Mapped[str] = mapped_column(String(32))
    opportunity_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    rep_id: Mapped[str | None] = mapped_column(String(255))


class OpportunityRow(Base):
    """One opportunity as its sales events tell it (``opportunity_id``, else the contact's one
    implicit ``contact:<id>``): created, won, lost, latest amount, primary contact."""

    __tablename__ = "report_opportunities"

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    won_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    amount: Mapped[float] = mapped_column(Float)
    primary_contact: Mapped[str] = mapped_column(String(32))


class OpportunityContactRow(Base):
    """A contact of an opportunity (one of its sales events is about the contact)."""

    __tablename__ = "report_opportunity_contacts"

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class ReportContactRow(Base):
    """A contact's first marketing touch: where it came from."""

    __tablename__ = "report_contacts"

    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_touch_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200))
    medium: Mapped[str | None] = mapped_column(String(200))
    campaign: Mapped[str | None] = mapped_column(String(200))


# ---- what an event says ------------------------------------------------------------------


def _utm(key: str, campaign_key: str) -> ColumnElement[Any]:
    """A UTM value: Segment's ``context.campaign.<key>``, else the ``utm_<key>`` property."""
    return func.coalesce(
        json_text(EventRow.context, "campaign", campaign_key),
        json_text(EventRow.properties, f"utm_{key}"),
    )


def _touch_columns(definition: AttributionDefinition) -> list[Any]:
    rules = definition.touchpoints
    source, campaign = _utm("source", "source"), _utm("campaign", "name")
    medium = func.lower(_utm("medium", "medium"))
    named = case(dict(rules.events), value=EventRow.name, else_=null())
    mapped = case(
        {medium_name.lower(): channel for medium_name, channel in definition.channels.items()},
        value=medium,
        else_=func.coalesce(medium, source, literal("Other")),
    )
    is_sales = EventRow.type == "sales"
    journey = json_text(EventRow.properties, "journey")
    return [
        EventRow.id,
        OutboxRow.contact_id,
        EventRow.timestamp,
        case((is_sales, "sales"), (named.is_not(None), "event"), else_="utm"),
        EventRow.name,
        case((is_sales, rules.sales_channel), else_=func.coalesce(named, mapped)),
        source,
        medium,
        func.coalesce(campaign, journey, json_text(EventRow.properties, "webinar"), literal(None)),
        journey,
    ]


def _touch_filter(definition: AttributionDefinition) -> ColumnElement[bool]:
    rules = definition.touchpoints
    tagged = or_(
        json_text(EventRow.context, "campaign", "source").is_not(None),
        json_text(EventRow.context, "campaign", "medium").is_not(None),
        json_text(EventRow.context, "campaign", "name").is_not(None),
        json_text(EventRow.properties, "utm_source").is_not(None),
        json_text(EventRow.properties, "utm_medium").is_not(None),
        json_text(EventRow.properties, "utm_campaign").is_not(None),
    )
    found = [
        and_(EventRow.type.in_(("track", "page", "screen")), tagged),
        EventRow.name.in_(list(rules.events)),
    ]
    if rules.sales_touches:
        found.append(and_(EventRow.type == "sales", EventRow.name.in_(rules.sales_events)))
    return or_(*found)


def _email_columns() -> list[Any]:
    return [
        EventRow.id,
        OutboxRow.contact_id,
        EventRow.timestamp,
        case((EventRow.name == EMAIL_OPENED, "open"), else_="click"),
        json_text(EventRow.properties, "journey"),
        json_text(EventRow.properties, "step"),
        json_text(EventRow.properties, "variant"),
    ]


def _money(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """An amount as reports can sum it: 0 to 1e15, cents and up (else none, or 0 for dust)."""
    return case(
        ((value >= 0.01) & (value <= 1e15), value),
        ((value >= 0) & (value < 0.01), 0.0),
        else_=null(),
    )


def _sales_columns() -> list[Any]:
    props = EventRow.properties
    return [
        EventRow.id,
        OutboxRow.contact_id,
        EventRow.timestamp,
        func.coalesce(json_text(props, "activity"), EventRow.name),
        json_text(props, "opportunity_id"),
        _money(json_number(props, "amount")),
        json_text(props, "stage"),
        json_text(props, "reason"),
        json_text(props, "rep_id"),
    ]


# ---- refreshing --------------------------------------------------------------------------


def _lock(session: Session) -> None:
    """One refresh at a time (a second one waits, then finds little left to do)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT pg_advisory_xact_lock({_PG_REPORT_LOCK})"))
    else:
        session.execute(text("BEGIN IMMEDIATE"))


def _upsert(
    session: Session,
    table: type[Base],
    columns: list[str],
    query: Any,
    key: str,
    refresh: list[str],
    keep_earliest: Any = None,
) -> None:
    """INSERT ... SELECT, updating ``refresh`` on a key conflict (only when the new row's
    value is before ``keep_earliest``'s, if given)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).from_select(columns, query)
    excluded = statement.excluded
    where = None if keep_earliest is None else excluded[keep_earliest.key] < keep_earliest
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[key], set_={name: excluded[name] for name in refresh}, where=where
        )
    )


def _state(session: Session, name: str, digest: str, now: datetime) -> ReportStateRow:
    row = session.get(ReportStateRow, name)
    if row is None:
        row = ReportStateRow(name=name, position=0, digest=digest, updated_at=now)
        session.add(row)
    return row


def _outbox_range(low: int, high: int) -> ColumnElement[bool]:
    return and_(OutboxRow.id > low, OutboxRow.id <= high)


def _from_outbox(columns: list[Any], low: int, high: int) -> Any:
    return (
        select(*columns)
        .select_from(OutboxRow)
        .join(EventRow, EventRow.id == OutboxRow.event_id)
        .where(_outbox_range(low, high))
    )


_TOUCH = ["event_id", "contact_id", "at", "kind", "event", "channel", "source", "medium"]
_TOUCH += ["campaign", "journey"]
_EMAIL = ["event_id", "contact_id", "at", "kind", "journey", "step", "variant"]
_SALES = ["event_id", "contact_id", "at", "activity", "opportunity_id", "amount", "stage"]
_SALES += ["reason", "rep_id"]
_SOURCE = ["contact_id", "first_touch_at", "channel", "source", "medium", "campaign"]
_OPPORTUNITY = ["key", "created_at", "won_at", "lost_at", "amount", "primary_contact"]


def _touchpoints(session: Session, definition: AttributionDefinition, low: int, high: int) -> None:
    query = _from_outbox(_touch_columns(definition), low, high).where(_touch_filter(definition))
    _upsert(session, TouchpointRow, _TOUCH, query, "event_id", ["contact_id"])
    _sources(session, low, high)


def _sources(session: Session, low: int, high: int) -> None:
    """A new first touch for the contacts whose touches in this outbox range came earlier."""
    tp = TouchpointRow
    ranked = (
        select(
            tp.contact_id,
            tp.at,
            tp.channel,
            tp.source,
            tp.medium,
            tp.campaign,
            func.row_number()
            .over(partition_by=tp.contact_id, order_by=(tp.at, tp.event_id))
            .label("n"),
        )
        .select_from(OutboxRow)
        .join(tp, tp.event_id == OutboxRow.event_id)
        .where(_outbox_range(low, high), tp.kind != "sales")
        .subquery()
    )
    first = select(*(column for column in ranked.c if column.name != "n")).where(ranked.c.n == 1)
    earlier = ReportContactRow.first_touch_at
    _upsert(session, ReportContactRow, _SOURCE, first, "contact_id", _SOURCE[1:], earlier)


def _emails(session: Session, low: int, high: int) -> None:
    names = (EMAIL_OPENED, EMAIL_CLICKED)
    query = _from_outbox(_email_columns(), low, high).where(EventRow.name.in_(names))
    _upsert(session, EmailEventRow, _EMAIL, query, "event_id", ["contact_id"])


def opportunity_key(sales: type[SalesEventRow] = SalesEventRow) -> ColumnElement[str]:
    """An opportunity's key: its ``opportunity_id``, else ``contact:<contact id>``."""
    return func.coalesce(sales.opportunity_id, literal("contact:") + sales.contact_id)


def _keys_in(low: int, high: int) -> Any:
    """Opportunity keys of the sales events in an outbox range."""
    s = SalesEventRow
    return (
        select(opportunity_key())
        .select_from(OutboxRow)
        .join(s, s.event_id == OutboxRow.event_id)
        .where(_outbox_range(low, high), s.activity.in_(OPPORTUNITY_ACTIVITIES))
    )


def _sales(session: Session, low: int, high: int) -> None:
    moved = list(session.scalars(_keys_in(low, high).distinct()))  # events changing hands
    query = _from_outbox(_sales_columns(), low, high).where(EventRow.type == "sales")
    _upsert(session, SalesEventRow, _SALES, query, "event_id", ["contact_id"])
    _opportunities(session, _keys_in(low, high), moved)


def _opportunities(session: Session, keys: Any, moved: Sequence[str]) -> None:
    """Rebuild the opportunities named by ``keys`` (a query) and ``moved`` from their events."""
    s = SalesEventRow
    key = opportunity_key()
    chosen = key.in_(keys) | key.in_(moved) if moved else key.in_(keys)
    for table in (OpportunityRow, OpportunityContactRow):
        session.execute(delete(table).where(table.key.in_(keys) | table.key.in_(moved)))
    ev = (
        select(key.label("key"), s.event_id, s.contact_id, s.at, s.activity, s.amount)
        .where(s.activity.in_(OPPORTUNITY_ACTIVITIES), chosen)
        .subquery("opp_events")
    )
    created = func.min(case((ev.c.activity == "opportunity_created", ev.c.at)))
    dates = (
        select(
            ev.c.key,
            func.coalesce(created, func.min(ev.c.at)).label("created_at"),
            func.min(case((ev.c.activity == "closed_won", ev.c.at))).label("won_at"),
            func.min(case((ev.c.activity == "closed_lost", ev.c.at))).label("lost_at"),
        )
        .group_by(ev.c.key)
        .subquery("opp_dates")
    )
    newest = func.row_number().over(
        partition_by=ev.c.key, order_by=(ev.c.at.desc(), ev.c.event_id.desc())
    )
    amounts = (
        select(ev.c.key, ev.c.amount, newest.label("n"))
        .where(ev.c.amount.is_not(None))
        .subquery("opp_amounts")
    )
    oldest = func.row_number().over(partition_by=ev.c.key, order_by=(ev.c.at, ev.c.event_id))
    firsts = select(ev.c.key, ev.c.contact_id, oldest.label("n")).subquery("opp_firsts")
    rows = (
        select(
            dates.c.key,
            dates.c.created_at,
            dates.c.won_at,
            dates.c.lost_at,
            func.coalesce(amounts.c.amount, 0.0),
            firsts.c.contact_id,
        )
        .join(firsts, and_(firsts.c.key == dates.c.key, firsts.c.n == 1))
        .outerjoin(amounts, and_(amounts.c.key == dates.c.key, amounts.c.n == 1))
    )
    session.execute(insert(OpportunityRow).from_select(_OPPORTUNITY, rows))
    pairs = select(ev.c.key, ev.c.contact_id).distinct()
    session.execute(insert(OpportunityContactRow).from_select(["key", "contact_id"], pairs))


def _catch_up(
    session: Session,
    name: str,
    digest: str,
    now: datetime,
    top: int,
    reset: Sequence[type[Base]],
) -> tuple[int, int] | None:
    """The next outbox range ``name`` has to read (resetting it when ``digest`` moved)."""
    state = _state(session, name, digest, now)
    if state.digest != digest:
        for table in reset:
            session.execute(delete(table))
        state.position, state.digest = 0, digest
    if state.position >= top:
        return None
    low, high = state.position, min(state.position + _BATCH, top)
    state.position, state.updated_at = high, now
    return low, high


def refresh_extracts(
    session: Session, definition: AttributionDefinition, now: datetime
) -> tuple[bool, int]:
    """Read one batch of new outbox rows into every extract; returns whether more are waiting
    and how many outbox ids were read.

    Runs in the caller's transaction, which it first locks against other refreshes.
    """
    _lock(session)
    top = session.scalar(select(func.max(OutboxRow.id))) or 0
    more, read = False, 0
    digest = definition.extraction_digest()
    work: tuple[tuple[str, str, Sequence[type[Base]]], ...] = (
        ("touchpoints", digest, [TouchpointRow, ReportContactRow]),
        ("email_events", "1", [EmailEventRow]),
        ("sales_events", "1", [SalesEventRow, OpportunityRow, OpportunityContactRow]),
    )
    for name, fingerprint, tables in work:
        span = _catch_up(session, name, fingerprint, now, top, tables)
        if span is None:
            continue
        low, high = span
        read += high - low
        if name == "touchpoints":
            _touchpoints(session, definition, low, high)
        elif name == "email_events":
            _emails(session, low, high)
        else:
            _sales(session, low, high)
        more = more or high < top
    return more, read
