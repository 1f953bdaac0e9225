"""The contact's side of the sales handoff: when one starts, what it starts with, what comes back.

A handoff starts in the step that made the contact an MQL (by score or a raised hand), or when
a journey's ``handoff`` step asks for one and none is running. The contact keeps a reference
(``HandoffRef``: owner, SLA state, outcome) that the handoff's ``handoff_update`` signals keep
current; a rejection by sales puts the contact on the re-nurture list. Pure transitions of
``ContactState``: the contact workflow performs the start these functions ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from contacts.contract import ContactConfig, ContactState, HandoffRef, Renurture
from contacts.recycling import schedule_recycle
from contacts.state import Changes, facts_of, set_static_membership
from handoff.contract import HandoffInput, HandoffUpdate
from handoff.routing import RoutingInput
from lifecycle.recycle import REJECTED, RecyclePolicy
from lifecycle.stages import Stage

__all__ = [
    "HANDOFF_TRIGGER_STAGE",
    "StartHandoff",
    "apply_handoff_update",
    "handoff_to_start",
    "wants_handoff",
]

HANDOFF_TRIGGER_STAGE = Stage.MQL

Trigger = Literal["hand_raiser", "score"]


@dataclass(frozen=True)
class StartHandoff:
    """Start the ``HandoffWorkflow`` child with this id and input."""

    workflow_id: str
    input: HandoffInput


def wants_handoff(state: ContactState, changes: Changes) -> bool:
    """A handoff starts when the contact enters MQL (by score or a raised hand)."""
    entered = any(
        e.stage == HANDOFF_TRIGGER_STAGE and not e.override for e in changes.stage_entries
    )
    active = state.handoff is not None and state.handoff.outcome is None
    return entered and not active


def handoff_to_start(
    state: ContactState, config: ContactConfig, changes: Changes, requested: bool, now: datetime
) -> StartHandoff | None:
    """The handoff this step starts, if any (``requested``: a journey's ``handoff`` step)."""
    if config.auto_handoff and wants_handoff(state, changes):
        entry = next(e for e in reversed(changes.stage_entries) if e.stage == HANDOFF_TRIGGER_STAGE)
        hand_raiser = entry.reason.startswith("Hand-raiser")
        return _begin(state, "hand_raiser" if hand_raiser else "score", entry.reason, now)
    if requested and (state.handoff is None or state.handoff.outcome is not None):
        return _begin(state, "score", "a journey's handoff step", now)
    return None


def _begin(state: ContactState, trigger: Trigger, reason: str, now: datetime) -> StartHandoff:
    state.handoff_counter += 1
    handoff_id = f"{state.contact_id}-h{state.handoff_counter}"
    workflow_id = f"handoff-{state.contact_id}-{state.handoff_counter}"
    scores = state.scores
    history = state.demand_history
    state.handoff = HandoffRef(
        handoff_id=handoff_id, workflow_id=workflow_id, started_at=now, trigger=trigger
    )
    data = HandoffInput(
        contact_id=state.contact_id,
        handoff_id=handoff_id,
        trigger=trigger,
        reason=reason,
        top_behaviours=list(scores.top_behaviours) if scores else [],
        demand_state=state.demand_state,
        demand_from=history[-1].previous if history else None,
        scores=({"fit": scores.fit, "engagement": scores.engagement} if scores else {}),
        lead=_routing_input(state, trigger, now),
        mql_at=now,
    )
    return StartHandoff(workflow_id=workflow_id, input=data)


def _routing_input(state: ContactState, trigger: Trigger, now: datetime) -> RoutingInput:
    facts = facts_of(state, now)
    segment = state.scores.segment if state.scores else None
    try:
        lead = RoutingInput.from_facts(facts, trigger)
        fit = state.scores.fit if state.scores else None
        return lead.model_copy(update={"segment": lead.segment or segment, "fit": fit})
    except (ValidationError, ValueError):
        # Unusable firmographics route by round-robin/fallback rather than fail the task.
        return RoutingInput(contact_id=state.contact_id, trigger=trigger)


def apply_handoff_update(
    state: ContactState,
    update: HandoffUpdate,
    renurture_list: str,
    now: datetime,
    recycle: RecyclePolicy | None = None,
) -> None:
    """Keep the owner and SLA the handoff reports (``contacts show``); a lead sales rejected
    is recycled by ``recycle`` (its rule for the rep's reason), or, without a policy (1.0.0),
    goes to the re-nurture list at once."""
    handoff = state.handoff
    if handoff is not None and handoff.handoff_id == update.handoff_id:
        handoff.owner = update.owner
        handoff.team = update.team
        handoff.sla_state = update.sla_state
        handoff.deadline = update.deadline
        handoff.first_contact_at = update.first_contact_at
        handoff.outcome = update.outcome
        handoff.outcome_reason = update.outcome_reason
        if update.stage is not None:  # only handoffs with an AE stage send it
            handoff.stage = update.stage
            handoff.source_owner = update.source_owner
    if update.outcome != "rejected":
        return
    reason = f"rejected by sales: {update.outcome_reason or 'no reason given'}"
    if recycle is not None:
        schedule_recycle(state, recycle, REJECTED, update.outcome_reason, reason, now)
        return
    state.renurture = Renurture(since=now, reason=reason)
    set_static_membership(state, renurture_list, member=True)
