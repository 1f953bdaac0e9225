"""What a handoff notice says, and to whom: the words reps, managers and customer success read.

Every notice about a lead carries the same context, so whoever reads it can act without
looking anything up: why the lead was handed off (hand-raise or score), its top three
behaviours, the demand state it is in and the one it came from, the score breakdown, and how to
see more (``revops contacts why <user id>``; the user id is looked up in the store by the
activity, the workflow only knows the opaque contact id). Times show in the recipient's time
zone and in UTC. Pure functions: the notice activity words, ``send_effect`` sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from handoff.contract import HandoffBrief, HandoffInput, HandoffState, Notice, Person
from handoff.settings import HandoffConfig
from handoff.sla import NoticePlan, brief_of

__all__ = ["Composed", "build_notice", "compose", "person"]


def person(config: HandoffConfig, person_id: str) -> Person:
    """A rep from the routing config, customer success from the handoff settings, else a bare id."""
    cs = config.settings.customer_success
    if person_id == cs.owner:
        return Person(id=cs.owner, name=cs.name, email=cs.email)
    try:
        rep = config.routing.rep(person_id)
    except KeyError:
        return Person(id=person_id, name=person_id)
    return Person(
        id=rep.id,
        name=rep.name,
        email=rep.email,
        timezone=rep.timezone,
        booking_link=rep.booking_link,
    )


def build_notice(
    plan: NoticePlan,
    data: HandoffInput,
    state: HandoffState,
    config: HandoffConfig,
    routing_note: str | None = None,
) -> Notice | None:
    """The notice ``plan`` asks for (None when it has nobody to go to)."""
    if plan.to is None:
        return None
    notify = config.settings.notify
    channels = {
        "assigned": notify.owner,
        "reminder": notify.reminder,
        "escalation": notify.escalation,
        "reassigned_away": ("slack",),
        "reply_warning": notify.reply_warning,
        "customer_success": notify.customer_success,
    }[plan.kind]
    brief = brief_of(data, state).model_copy(update={"routing_note": routing_note})
    return Notice(
        kind=plan.kind,
        key=f"{data.contact_id}/{data.handoff_id}/{plan.what}",
        channels=list(channels),
        to=person(config, plan.to),
        about=person(config, plan.about) if plan.about else None,
        brief=brief,
        webhook_url=notify.webhook_url if plan.kind == "assigned" else None,
    )


@dataclass(frozen=True)
class Composed:
    """A notice in words: subject / headline, the detail lines, and a CRM task title."""

    subject: str
    lines: list[str]
    task_title: str

    @property
    def text(self) -> str:
        """Slack / email body: the headline, then one detail per line."""
        return "\n".join([self.subject, *self.lines])


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "not set"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a %d %b %H:%M} {local.tzname()} ({moment:%Y-%m-%d %H:%M} UTC)"


def _lead_lines(brief: HandoffBrief, user_id: str | None) -> list[str]:
    """The context every notice carries: why, behaviours, demand state, scores, how to see more."""
    trigger = "hand-raiser" if brief.trigger == "hand_raiser" else "score-qualified MQL"
    behaviours = ", ".join(brief.top_behaviours) or "none recorded"
    demand = brief.demand_state or "unknown"
    if brief.demand_from:
        demand += f" (came from {brief.demand_from})"
    scores = ", ".join(f"{name} {value:g}" for name, value in brief.scores.items())
    who = f"revops contacts why {user_id}" if user_id else "revops contacts why <user id>"
    return [
        f"Why: {trigger}: {brief.reason}",
        f"Top behaviours: {behaviours}",
        f"Demand state: {demand}",
        f"Scores: {scores or 'none'}",
        f"See more: `{who}` (contact {brief.contact_id}, handoff {brief.handoff_id})",
    ]


def compose(notice: Notice, user_id: str | None) -> Composed:
    """Words of a notice; ``user_id`` (looked up in the store by the activity) names the contact
    in the "see more" command. Times show in the recipient's time zone and in UTC."""
    brief, to = notice.brief, notice.to
    about = notice.about.id if notice.about else brief.owner
    deadline = _when(brief.deadline, to.timezone)
    lead = _lead_lines(brief, user_id)
    routed = f"Routed: {brief.method} to {brief.owner}" + (f" ({brief.team})" if brief.team else "")
    if brief.routing_note:
        routed += f"; {brief.routing_note}"
    kind = notice.kind
    if kind == "assigned":
        return _assigned(brief, to, lead, routed, deadline)
    if kind == "reminder":
        subject = f"Reminder: first touch due by {deadline} ({brief.handoff_id})"
        return Composed(subject, lead, "First touch due soon")
    if kind == "escalation":
        subject = f"SLA breached: {about} has not touched a lead due {deadline}"
        subject += f" (breach {brief.breaches})"
        return Composed(subject, [*lead, routed], f"SLA breach by {about}: follow up")
    if kind == "reassigned_away":
        moved = f"from {brief.reassigned_from} to {brief.owner}"
        subject = f"Lead {brief.handoff_id} reassigned {moved}"
        return Composed(subject, [routed], "Lead reassigned")
    if kind == "reply_warning":
        subject = f"No sales reply since the MQL at {_when(brief.mql_at, to.timezone)} ({about})"
        return Composed(subject, [*lead, routed], f"No sales reply: check with {about}")
    won = brief.sales_context.get("closed_won", {})
    sales = ", ".join(f"{k}={v}" for k, v in sorted(won.items())) or "none"
    lines = [
        *lead,
        f"Sales owner: {brief.owner} ({brief.team or 'no team'})",
        f"Dates: MQL {brief.mql_at:%Y-%m-%d}, first contact "
        f"{_date(brief.first_contact_at)}, accepted {_date(brief.accepted_at)}, "
        f"opportunity {_date(brief.opportunity_at)}, won {_date(brief.closed_at)}",
        f"Deal notes from sales: {sales}",
    ]
    return Composed(f"Closed won: onboard {brief.contact_id}", lines, "Onboard new customer")


def _assigned(
    brief: HandoffBrief, to: Person, lead: list[str], routed: str, deadline: str
) -> Composed:
    """The new owner's notice: an SDR's MQL, or an AE's qualified lead with the SDR's notes."""
    taken = f", reassigned from {brief.reassigned_from}" if brief.reassigned_from else ""
    booking = [f"Booking link: {to.booking_link}"] if to.booking_link else []
    source = brief.source
    if brief.stage == "ae" and source is not None:
        sdr = f"{source.owner} ({source.team})" if source.team else source.owner
        size = f"{source.deal_size:g}" if source.deal_size is not None else "not given"
        subject = (
            f"New SQL for {to.name} ({to.id}) from SDR {source.owner}{taken}: "
            f"first touch by {deadline}"
        )
        lines = [
            f"Qualified by SDR {sdr} on {_when(source.qualified_at, to.timezone)}",
            f"SDR notes: {source.notes or 'none'}",
            f"Deal size: {size}",
            *lead,
            routed,
            f"SLA: {brief.policy}",
            *booking,
        ]
        return Composed(subject, lines, "Contact new SQL")
    label = "hand-raiser" if brief.trigger == "hand_raiser" else "MQL"
    subject = f"New {label} for {to.name} ({to.id}){taken}: first touch by {deadline}"
    lines = [*lead, routed, f"SLA: {brief.policy}", *booking]
    return Composed(subject, lines, f"Contact new {label}")


def _date(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"
