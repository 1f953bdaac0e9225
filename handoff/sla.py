"""Pure rules of the sales handoff: SLA timers, sales activity, and what each notice says.

The handoff workflow keeps a ``HandoffState`` and calls these functions to change it, then
performs what they ask for (notices, releasing a lead, a reassignment; the words of each
notice are ``handoff.notice``'s). Keeping the rules here
makes them testable without Temporal and deterministic (no clock: ``now`` is an argument), so
workflow code stays a thin loop of "wait for a signal or the next timer, apply, act".

Timers of the current owner's turn, in business time on the team's calendar (``SlaPlan``):
reminder (default at 75% of the window), breach at the deadline (escalate to the manager),
second breach one window later (reassign to the next rep, who gets a new SLA). Once per
handoff, ``reply_warning_hours`` of wall-clock time after the MQL without any sales reply, the
manager gets a warning task. The first sales response (a first touch, an accept or a reject)
stops the SLA clock: it is met when no breach happened before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from handoff.contract import (
    HandoffBrief,
    HandoffInput,
    HandoffResult,
    HandoffState,
    HandoffUpdate,
    NoticeKind,
    OwnerTurn,
    SalesActivity,
    SlaRecord,
    SlaState,
    SlaStatus,
    StageSource,
    TimerKind,
    TurnRecord,
)
from handoff.routing import RoutingDecision, SlaPlan, deal_amount
from handoff.settings import SQL_STAGE_ENTERED, HandoffSettings

__all__ = [
    "RUNNING_STATES",
    "CatchUp",
    "NoticePlan",
    "SalesKind",
    "SalesStep",
    "TimerStep",
    "apply_sales_activity",
    "apply_timer",
    "begin_stage",
    "brief_of",
    "classify",
    "due_timer",
    "next_wakeup",
    "record_of",
    "result_of",
    "start_turn",
    "status_of",
    "update_of",
]

SalesKind = Literal["touch", "accept", "qualify", "reject", "opportunity", "won", "lost", "other"]

RUNNING_STATES: frozenset[SlaState] = frozenset(
    {"routing", "waiting", "breached", "escalated", "reassigned"}
)
"""States in which the SLA clock still runs (no sales response yet)."""

_TIMER_ORDER: tuple[TimerKind, ...] = (
    "reminder",
    "breach",
    "second_breach",
    "reply_warning",
    "expire",
)


# --- owners and timers -----------------------------------------------------------------------


def start_turn(
    state: HandoffState, decision: RoutingDecision, plan: SlaPlan, now: datetime
) -> OwnerTurn:
    """Give the lead to ``decision.rep_id`` with ``plan``'s timers; the first turn also sets the
    once-per-handoff reply warning."""
    turn = OwnerTurn(
        stage=state.stage,
        seq=len(state.turns),
        owner=decision.rep_id,
        team=decision.team,
        manager=decision.manager_id,
        method=decision.method,
        reassigned_from=decision.reassigned_from,
        assigned_at=now,
        plan=plan,
    )
    if not state.turns:
        state.reply_warning_at = plan.reply_warning_at
    state.turns.append(turn)
    if state.state in RUNNING_STATES:
        state.state = "reassigned" if turn.seq else "waiting"
    return turn


def begin_stage(
    state: HandoffState, decision: RoutingDecision, plan: SlaPlan, now: datetime
) -> OwnerTurn:
    """The AE's turn after qualification: a fresh SLA clock (the SDR's stage is over and
    counted), the SDR kept as ``state.source``; the once-per-handoff reply warning is spent."""
    state.stage = "ae"
    state.responded_at = None
    state.sla_met = None
    state.breaches_before_stage = state.breaches
    state.released = False
    state.reply_warned = True
    turn = start_turn(state, decision, plan, now)
    state.state = "waiting"
    return turn


def _sla_running(state: HandoffState) -> bool:
    return state.responded_at is None and state.outcome is None and bool(state.turns)


def _timers(state: HandoffState, settings: HandoffSettings) -> list[tuple[datetime, TimerKind]]:
    """Every timer still pending, with its instant."""
    pending: list[tuple[datetime, TimerKind]] = []
    turn = state.turn
    if turn is not None and _sla_running(state):
        plan = turn.plan
        if not turn.reminded and turn.breaches == 0:
            pending.append((plan.reminder_at, "reminder"))
        if turn.breaches == 0:
            pending.append((plan.deadline, "breach"))
        elif turn.breaches == 1 and plan.reassign_at is not None:
            pending.append((plan.reassign_at, "second_breach"))
    warning_due = state.outcome is None and state.responded_at is None and not state.reply_warned
    if warning_due and state.reply_warning_at is not None:
        pending.append((state.reply_warning_at, "reply_warning"))
    if state.outcome is None and state.turns:
        since = state.accepted_at or state.turns[0].plan.mql_at
        pending.append((since + timedelta(days=settings.close_window_days), "expire"))
    return sorted(pending, key=lambda item: (item[0], _TIMER_ORDER.index(item[1])))


def next_wakeup(state: HandoffState, settings: HandoffSettings) -> datetime | None:
    """When the next timer is due (None: nothing to wait for but sales activity)."""
    pending = _timers(state, settings)
    return pending[0][0] if pending else None


def due_timer(state: HandoffState, now: datetime, settings: HandoffSettings) -> TimerKind | None:
    """The earliest timer due at ``now``; fire it, then ask again (a fire can add timers)."""
    pending = _timers(state, settings)
    if pending and pending[0][0] <= now:
        return pending[0][1]
    return None


@dataclass
class NoticePlan:
    """A notice to send: its kind, the recipient's id, whom it is about, and the key suffix."""

    kind: NoticeKind
    to: str | None
    what: str
    about: str | None = None


@dataclass
class TimerStep:
    """What the workflow must do after a timer fired."""

    notices: list[NoticePlan] = field(default_factory=list)
    reassign: bool = False
    release: bool = False


@dataclass
class CatchUp:
    """Timers fired together in one wake-up: after workers were down past several of them.

    The owner's reminder is pointless once the deadline it announces has passed, and the
    manager needs one escalation, not one per missed timer. Without an outage each timer
    fires in its own wake-up and this changes nothing.
    """

    escalated: bool = False


def apply_timer(
    state: HandoffState,
    kind: TimerKind,
    now: datetime,
    settings: HandoffSettings,
    catch_up: CatchUp | None = None,
) -> TimerStep:
    """Fire ``kind``: count it, move the SLA state, and say what to send (with ``catch_up``,
    a stale reminder and a second escalation of the same wake-up are left out)."""
    turn = state.turn
    assert turn is not None, "timers start with the first owner"
    step = TimerStep()
    if kind == "reminder":
        turn.reminded = True
        if catch_up is not None and now >= turn.plan.deadline:
            return step  # stale: the breach fires in this same wake-up
        state.reminders += 1
        step.notices.append(NoticePlan("reminder", turn.owner, f"reminder-{turn.seq}"))
    elif kind == "breach":
        turn.breaches = 1
        _breach(state, turn, step, escalate=True, catch_up=catch_up)
    elif kind == "second_breach":
        turn.breaches = 2
        step.reassign = state.reassignments < settings.max_reassignments
        # Reassigning sends its own notices; with nobody left to try, escalate once more.
        _breach(state, turn, step, escalate=not step.reassign, catch_up=catch_up)
    elif kind == "reply_warning":
        state.reply_warned = True
        first = state.turns[0]
        warn_to = first.plan.reply_warning_to
        step.notices.append(NoticePlan("reply_warning", warn_to, "reply-warning", turn.owner))
    else:
        state.outcome = "expired"
        state.outcome_reason = f"not closed within {settings.close_window_days:g} days"
        state.closed_at = now
        state.state = "closed"
        step.release = not state.released
    return step


def _breach(
    state: HandoffState,
    turn: OwnerTurn,
    step: TimerStep,
    *,
    escalate: bool,
    catch_up: CatchUp | None = None,
) -> None:
    """A deadline passed without a response: count it and tell the manager if asked to (once
    per catch-up)."""
    state.breaches += 1
    state.sla_met = False
    state.state = "breached"
    if not escalate or turn.plan.escalate_to is None:
        return
    if catch_up is not None:
        if catch_up.escalated:
            state.state = "escalated"
            return
        catch_up.escalated = True
    state.escalations += 1
    state.state = "escalated"
    what = f"escalation-{turn.seq}-{turn.breaches}"
    step.notices.append(NoticePlan("escalation", turn.plan.escalate_to, what, turn.owner))


# --- sales activity ---------------------------------------------------------------------------


def classify(name: str, settings: HandoffSettings, *, stages: bool = False) -> SalesKind:
    """What a sales activity means to the handoff (unknown names are kept but change nothing).

    ``stages``: the handoff has an AE stage (an ``ae`` team, and code that knows it), so the
    qualify event hands the lead over; otherwise it is just another activity."""
    if stages and name in (settings.qualify_event, SQL_STAGE_ENTERED):
        return "qualify"
    kinds: dict[str, SalesKind] = {
        settings.accept_event: "accept",
        settings.reject_event: "reject",
        settings.opportunity_event: "opportunity",
        settings.won_event: "won",
        settings.lost_event: "lost",
    }
    if name in settings.first_touch_events:
        return "touch"
    return kinds.get(name, "other")


@dataclass
class SalesStep:
    """What the workflow must do after a sales activity."""

    kind: SalesKind
    changed: bool = False
    release: bool = False
    notices: list[NoticePlan] = field(default_factory=list)
    qualify: bool = False
    """The SDR qualified the lead: the workflow routes it to an AE (``begin_stage``)."""


def _respond(state: HandoffState, at: datetime) -> bool:
    """The first sales response stops the SLA clock; met when nothing was breached before (in
    this stage)."""
    if state.responded_at is not None:
        return False
    state.responded_at = at
    state.sla_met = state.breaches == state.breaches_before_stage
    if state.turn is not None and state.turn.responded_at is None:
        state.turn.responded_at = at
    if state.state in RUNNING_STATES:
        state.state = "met" if state.sla_met else "breached"
    return True


def _clamp(activity: SalesActivity, state: HandoffState, now: datetime) -> datetime:
    """The activity's time, kept between the MQL moment and now (clocks of CRMs drift)."""
    floor = state.turns[0].plan.mql_at if state.turns else activity.at
    return min(max(activity.at, floor), now)


def apply_sales_activity(
    state: HandoffState,
    activity: SalesActivity,
    now: datetime,
    settings: HandoffSettings,
    *,
    stages: bool = False,
) -> SalesStep:
    """Apply one sales activity; repeats of an accept or an outcome change nothing.

    ``stages``: an SDR's qualification hands the lead to an AE (see ``classify``)."""
    step = SalesStep(kind=classify(activity.name, settings, stages=stages))
    state.activities += 1
    if state.outcome is not None:
        return step
    at = _clamp(activity, state, now)
    if step.kind == "qualify":
        _qualify(state, activity, at, step)
    elif step.kind == "touch":
        step.changed = _touch(state, at)
    elif step.kind in ("accept", "opportunity"):
        step.changed = _accept(state, at, step)
        if state.stage == "ae" and _respond(state, at):
            step.changed = True  # the AE answered by opening the deal
        if step.kind == "opportunity" and state.opportunity_at is None:
            state.opportunity_at = at
            state.sales_context["opportunity"] = dict(activity.properties)
            step.changed = True
    elif step.kind in ("reject", "won", "lost"):
        _finish(state, activity, at, step, settings)
    return step


def _touch(state: HandoffState, at: datetime) -> bool:
    changed = _respond(state, at)
    if state.turn is not None and state.turn.touched_at is None:
        state.turn.touched_at = at
    if state.first_contact_at is None:
        state.first_contact_at = at
        changed = True
    return changed


def _qualify(state: HandoffState, activity: SalesActivity, at: datetime, step: SalesStep) -> None:
    """The SDR qualified the lead: their SLA is answered, their open lead freed, and the
    workflow routes it to an AE. Only once: a repeat (or a qualify in the AE stage) is noted."""
    turn = state.turn
    if state.stage != "sdr" or turn is None:
        return
    _respond(state, at)
    notes = activity.properties.get("notes")
    state.source = StageSource(
        owner=turn.owner,
        team=turn.team,
        qualified_at=at,
        notes=str(notes)[:2000] if notes not in (None, "") else None,
        deal_size=deal_amount(activity.properties.get("amount")),
    )
    state.sales_context["qualified"] = dict(activity.properties)
    step.qualify = step.changed = True
    step.release = not state.released


def _accept(state: HandoffState, at: datetime, step: SalesStep) -> bool:
    if state.accepted_at is not None:
        return False
    _respond(state, at)
    state.accepted_at = at
    state.state = "accepted"
    step.release = not state.released
    return True


def _finish(
    state: HandoffState,
    activity: SalesActivity,
    at: datetime,
    step: SalesStep,
    settings: HandoffSettings,
) -> None:
    """Reject, closed won or closed lost: the handoff's outcome (the workflow then ends)."""
    _respond(state, at)
    reason = activity.properties.get("reason")
    state.outcome_reason = str(reason) if reason not in (None, "") else None
    state.closed_at = at
    if step.kind == "reject":
        state.outcome, state.state = "rejected", "rejected"
    elif step.kind == "won":
        state.outcome, state.state = "closed_won", "closed"
        state.sales_context["closed_won"] = dict(activity.properties)
        owner = settings.customer_success.owner
        about = state.turn.owner if state.turn else None
        step.notices.append(NoticePlan("customer_success", owner, "customer-success", about))
    else:
        state.outcome, state.state = "closed_lost", "closed"
        state.sales_context["closed_lost"] = dict(activity.properties)
    step.release = not state.released
    step.changed = True


# --- views --------------------------------------------------------------------------------------


def status_of(data: HandoffInput, state: HandoffState) -> SlaStatus:
    """The ``sla`` query's answer."""
    turn = state.turn
    plan = turn.plan if turn else None
    return SlaStatus(
        handoff_id=data.handoff_id,
        contact_id=data.contact_id,
        owner=turn.owner if turn else None,
        team=turn.team if turn else None,
        deadline=plan.deadline if plan else None,
        reminder_at=plan.reminder_at if plan else None,
        state=state.state,
        first_contact_at=state.first_contact_at,
        breaches=state.breaches,
        reassignments=state.reassignments,
        reassign_at=plan.reassign_at if plan else None,
        escalations=state.escalations,
        reminders=state.reminders,
        sla_met=state.sla_met,
        policy=plan.policy if plan else None,
        calendar=plan.calendar if plan else None,
        mql_at=data.mql_at,
        accepted_at=state.accepted_at,
        closed_at=state.closed_at,
        outcome=state.outcome,
        outcome_reason=state.outcome_reason,
        stage=state.stage,
        source_owner=state.source.owner if state.source else None,
        qualified_at=state.source.qualified_at if state.source else None,
    )


def update_of(data: HandoffInput, state: HandoffState) -> HandoffUpdate:
    """The ``handoff_update`` signal for the parent contact workflow."""
    turn = state.turn
    return HandoffUpdate(
        handoff_id=data.handoff_id,
        owner=turn.owner if turn else None,
        team=turn.team if turn else None,
        sla_state=state.state,
        deadline=turn.plan.deadline if turn else None,
        first_contact_at=state.first_contact_at,
        outcome=state.outcome,
        outcome_reason=state.outcome_reason,
        stage=state.stage if state.source else None,
        source_owner=state.source.owner if state.source else None,
    )


def _turn_record(state: HandoffState, turn: OwnerTurn) -> TurnRecord:
    responded = turn.responded_at
    if responded is None and turn.seq == len(state.turns) - 1:
        responded = state.responded_at  # a state kept before turns had their own
    return TurnRecord(
        seq=turn.seq,
        owner=turn.owner,
        team=turn.team,
        assigned_at=turn.assigned_at,
        deadline=turn.plan.deadline,
        breached=turn.breaches > 0,
        responded_at=responded,
        stage=turn.stage,
        first_touch_at=turn.touched_at,
    )


def record_of(data: HandoffInput, state: HandoffState) -> SlaRecord:
    """The SLA row of this handoff as it stands."""
    turn, first = state.turn, (state.turns[0] if state.turns else None)
    return SlaRecord(
        handoff_id=data.handoff_id,
        contact_id=data.contact_id,
        trigger=data.trigger,
        policy=turn.plan.policy if turn else None,
        state=state.state,
        mql_date=data.mql_at,
        assigned_at=first.assigned_at if first else None,
        owner=turn.owner if turn else None,
        team=turn.team if turn else None,
        first_contact_date=state.first_contact_at,
        responded_at=state.responded_at,
        deadline=turn.plan.deadline if turn else None,
        sla_met=state.sla_met,
        reminders=state.reminders,
        breaches=state.breaches,
        escalations=state.escalations,
        reassignments=state.reassignments,
        outcome=state.outcome,
        outcome_reason=state.outcome_reason,
        turns=[_turn_record(state, t) for t in state.turns],
        revision=state.revision,
    )


def result_of(data: HandoffInput, state: HandoffState) -> HandoffResult:
    """The workflow's result once the lead has an outcome."""
    assert state.outcome is not None
    turn = state.turn
    return HandoffResult(
        handoff_id=data.handoff_id,
        contact_id=data.contact_id,
        outcome=state.outcome,
        outcome_reason=state.outcome_reason,
        owner=turn.owner if turn else None,
        team=turn.team if turn else None,
        sla_met=state.sla_met,
        first_contact_at=state.first_contact_at,
        accepted_at=state.accepted_at,
        closed_at=state.closed_at,
        breaches=state.breaches,
        reassignments=state.reassignments,
    )


def brief_of(data: HandoffInput, state: HandoffState) -> HandoffBrief:
    """What every notice tells about the lead and its handoff."""
    turn = state.turn
    return HandoffBrief(
        contact_id=data.contact_id,
        handoff_id=data.handoff_id,
        trigger=data.trigger,
        reason=data.reason,
        top_behaviours=data.top_behaviours[:3],
        demand_state=data.demand_state,
        demand_from=data.demand_from,
        scores=data.scores,
        mql_at=data.mql_at,
        owner=turn.owner if turn else None,
        team=turn.team if turn else None,
        method=turn.method if turn else None,
        routing_note=None,
        policy=turn.plan.policy if turn else None,
        deadline=turn.plan.deadline if turn else None,
        breaches=turn.breaches if turn else 0,
        reassigned_from=turn.reassigned_from if turn else None,
        first_contact_at=state.first_contact_at,
        accepted_at=state.accepted_at,
        opportunity_at=state.opportunity_at,
        closed_at=state.closed_at,
        sales_context=state.sales_context,
        stage=state.stage,
        source=state.source,
    )
