"""What the contact's children ask of it: journey requests and the handoff's updates.

A journey step may set a trait, change a static list, ask for an enrollment elsewhere (decided
by the rules like any occurrence), for the sales handoff or to recycle the contact (by the
recycle policy's rule for its cause), and says ``finished`` last; the handoff reports its
owner and SLA. ``take_requests`` applies them to the contact's state in arrival order and
returns what the rest of the step must act on. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contacts.behaviour import RELEASED, Behaviour
from contacts.contract import ContactConfig, ContactState
from contacts.handoff import apply_handoff_update
from contacts.recycling import schedule_recycle
from contacts.state import set_static_membership
from handoff.contract import HandoffUpdate
from journeys.contract import JourneyRequest
from models.decisions import ENROLL_REQUEST_EVENT, EventOccurred, Occurrence

__all__ = ["ENROLL_REQUEST_EVENT", "Requested", "take_requests"]


@dataclass
class Requested:
    """What the requests of one step leave for the rest of it."""

    occurrences: list[Occurrence] = field(default_factory=list)
    """Enrollments asked for, to be decided by the rules with the step's other occurrences."""
    handoff: bool = False
    """A journey asked for the sales handoff."""
    handoff_updated: bool = False
    """The handoff reported news (the owner search attribute may change)."""
    review: bool = False
    """A journey ended or the handoff reached an outcome while journeys are paused: what
    paused them may be over, so the rules should look again."""


def take_requests(
    state: ContactState,
    requests: Sequence[JourneyRequest],
    updates: Sequence[HandoffUpdate],
    config: ContactConfig,
    now: datetime,
    behaviour: Behaviour = RELEASED,
) -> Requested:
    """Apply journeys' requests, then the handoff's updates, in the order they arrived."""
    recycle = config.recycle if behaviour.recycle_policy else None
    found = Requested(handoff_updated=bool(updates))
    ended = any(u.outcome is not None for u in updates)
    for request in requests:
        if request.kind == "set_trait" and request.name:
            state.traits[request.name] = request.value
        elif request.kind in ("list_add", "list_remove") and request.name:
            member = request.kind == "list_add"
            set_static_membership(state, request.name, member=member)
        elif request.kind == "enroll" and request.name:
            found.occurrences.append(
                EventOccurred(name=ENROLL_REQUEST_EVENT, properties={"journey": request.name})
            )
        elif request.kind == "handoff":
            found.handoff = True
        elif request.kind == "recycle" and request.name and recycle is not None:
            journey = _journey_of(state, request.enrollment_id)
            words = f"{request.name} in {journey}"
            schedule_recycle(state, recycle, request.name, None, words, now)
        elif request.kind == "finished":
            ended = True
            state.enrollments = [
                e for e in state.enrollments if e.enrollment_id != request.enrollment_id
            ]
    for update in updates:
        apply_handoff_update(state, update, config.renurture_list, now, recycle)
    paused = any(e.paused for e in state.enrollments)
    found.review = behaviour.resume_paused and ended and paused
    return found


def _journey_of(state: ContactState, enrollment_id: str) -> str:
    """The journey of a running enrollment, by its id ("a journey" when it is gone)."""
    found = next((e for e in state.enrollments if e.enrollment_id == enrollment_id), None)
    return found.journey if found is not None else "a journey"
