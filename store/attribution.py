"""Attribution credits in SQL: every touchpoint's share of every opportunity, under one model.

The rules are ``analysis.attribution``'s; this module writes them as one query over the report
extracts (``store.report_extract``): opportunities from the sales webhook's activity, their
contacts, the touchpoints on each opportunity's path, each touch's position, the anchors, and
the weight. ``credits_query`` returns one row per (opportunity, touchpoint) with ``weight``
(the weights of one opportunity sum to 1) and the opportunity's ``amount``; the attribution
report groups it by channel, campaign, journey and account, and tests sum it per opportunity.

Opportunities and their contacts come from ``report_opportunities`` and
``report_opportunity_contacts`` (kept from the sales webhook's activity by
``store.report_extract``): named by ``opportunity_id`` (else the contact's one implicit
``contact:<contact id>``), the latest amount sent, the contact of the first event as primary;
the account is the primary contact's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    func,
    join,
    literal,
    select,
)
from sqlalchemy.sql import Select, Subquery
from sqlalchemy.sql.elements import ColumnElement

from analysis.attribution import NO_TOUCHPOINT, PositionModel, TimeDecayModel
from store.funnel import PassRow
from store.history import ListMembershipRow
from store.report_extract import OpportunityContactRow, OpportunityRow, TouchpointRow
from store.schema import ContactRow
from store.sqlfn import seconds_between

__all__ = ["credits_query", "opportunities_query", "segment_members"]

Model = PositionModel | TimeDecayModel


def segment_members(segment: str) -> Any:
    """Contacts that have been on the list ``segment`` (a segment is a list)."""
    return select(ListMembershipRow.contact_id).where(ListMembershipRow.list_name == segment)


def opportunities_query() -> Subquery:
    """One row per opportunity: key, created_at, won_at, lost_at, amount, primary contact
    and account (the primary contact's; ``(no account)`` without one)."""
    o = OpportunityRow
    account = func.coalesce(ContactRow.account_id, literal("(no account)"))
    return (
        select(
            o.key,
            o.created_at,
            o.won_at,
            o.lost_at,
            o.amount,
            o.primary_contact,
            account.label("account"),
        )
        .outerjoin(ContactRow, ContactRow.contact_id == o.primary_contact)
        .subquery("opportunities")
    )


def _path(opps: Subquery, model: Model, lookback_seconds: float) -> Subquery:
    """The touchpoints on each opportunity's path, numbered, with the anchors' positions."""
    tp, oc = TouchpointRow, OpportunityContactRow
    lead_at = (
        select(func.min(PassRow.reached_lead))
        .where(PassRow.contact_id == opps.c.primary_contact)
        .correlate(opps)
        .scalar_subquery()
    )
    to_won = isinstance(model, PositionModel) and model.closed_won > 0
    end = func.coalesce(opps.c.won_at, opps.c.created_at) if to_won else opps.c.created_at
    age = seconds_between(opps.c.created_at, tp.at)
    on_path = join(oc, tp, tp.contact_id == oc.contact_id)
    touches = (
        select(
            opps.c.key,
            tp.event_id,
            tp.contact_id,
            tp.at,
            tp.event,
            func.coalesce(tp.channel, literal(NO_TOUCHPOINT, String)).label("channel"),
            tp.campaign,
            tp.journey,
            (tp.contact_id == opps.c.primary_contact).label("is_primary"),
            lead_at.label("lead_at"),
            opps.c.created_at,
            opps.c.won_at,
            opps.c.amount,
            opps.c.account,
            opps.c.primary_contact,
            age.label("age"),
            func.row_number()
            .over(partition_by=opps.c.key, order_by=(tp.at, tp.event_id))
            .label("i"),
            func.count().over(partition_by=opps.c.key).label("n"),
        )
        .select_from(opps)
        # An opportunity without a touch on its path keeps one row with no touch (weight 1).
        .outerjoin(on_path, and_(oc.key == opps.c.key, tp.at <= end, age <= lookback_seconds))
        .subquery("touches")
    )
    t = touches.c
    at_creation = func.max(case((t.at <= t.created_at, t.i))).over(partition_by=t.key)
    lead_touch = func.max(case((t.is_primary & (t.at <= t.lead_at), t.i))).over(partition_by=t.key)
    extra: list[ColumnElement[Any]] = [
        func.coalesce(at_creation, 1).label("o_idx"),
        func.coalesce(lead_touch, 1).label("l_idx"),
    ]
    if isinstance(model, TimeDecayModel):
        half_life = model.half_life.total_seconds()
        decay = func.coalesce(
            func.power(literal(0.5, Float), t.age / literal(half_life, Float)), 1.0
        )
        extra += [decay.label("d"), func.sum(decay).over(partition_by=t.key).label("sum_d")]
    return select(*touches.c, *extra).subquery("path")


def _position_weight(path: Subquery, model: PositionModel) -> ColumnElement[float]:
    p = path.c
    where = {"first": literal(1), "lead": p.l_idx, "opportunity": p.o_idx, "closed_won": p.n}
    anchors = model.anchors()
    share: ColumnElement[Any] = literal(0.0, Float)
    distinct: ColumnElement[Any] = literal(0)
    seen: list[ColumnElement[Any]] = []
    for name, weight in anchors.items():
        share = share + case((p.i == where[name], literal(weight, Float)), else_=0.0)
        new = case((where[name].in_(seen), 0), else_=1) if seen else literal(1)
        distinct = distinct + new
        seen.append(where[name])
    others = p.n - distinct
    spread = literal(model.spread, Float)
    scale = literal(1 / (1 - model.spread) if model.spread < 1 else 0.0, Float)
    return case(
        (others > 0, share + case((share == 0, spread / cast(others, Float)), else_=0.0)),
        else_=share * scale,
    )


def credits_query(
    model: Model,
    *,
    lookback_seconds: float,
    since: datetime,
    until: datetime,
    segment: str | None = None,
    opportunity: str | None = None,
) -> Select[Any]:
    """Per (opportunity, touchpoint): weight and amount, for opportunities created or won in
    ``[since, until)`` (or the one ``opportunity``), optionally of one segment's contacts."""
    opps = opportunities_query()
    chosen = select(opps).where(
        (opps.c.created_at >= since) & (opps.c.created_at < until)
        | (opps.c.won_at >= since) & (opps.c.won_at < until)
    )
    if opportunity is not None:
        chosen = select(opps).where(opps.c.key == opportunity)
    if segment is not None:
        chosen = chosen.where(opps.c.primary_contact.in_(segment_members(segment)))
    picked = chosen.subquery("picked")
    path = _path(picked, model, lookback_seconds)
    p = path.c
    if isinstance(model, TimeDecayModel):
        weight: ColumnElement[Any] = p.d / p.sum_d
    else:
        weight = _position_weight(path, model)
    return select(
        p.key,
        p.event_id,
        p.contact_id,
        p.at,
        p.event,
        p.channel,
        p.campaign,
        p.journey,
        weight.label("weight"),
        p.amount,
        p.created_at,
        p.won_at,
        p.account,
        p.primary_contact,
    )
