"""The contact workflow's children: journey enrollments and the sales handoff.

Deterministic workflow code, split out of ``workflows/contact.py`` so that module stays about
the contact itself. Children outlive a continue-as-new of the contact (parent close policy
ABANDON) and are reached by workflow id, so a new run of the contact keeps talking to them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import Priority
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from models.contact import ContactState, Enrollment, HandoffRef, Stage
    from models.events import ContactEvent
    from models.facts import EventRecord
    from models.handoff import HandoffInput, HandoffUpdate, SalesActivity
    from models.journeys import JourneyContactUpdate, JourneyInput, JourneyStop
    from models.rules_io import PinnedJourney
    from revops.contact_state import Changes, facts_of
    from revops.errors import ConfigError
    from revops.journeys import parse_journey
    from revops.routing import RoutingInput

__all__ = ["Children"]

HANDOFF_TRIGGER_STAGE = Stage.MQL

Trigger = Literal["hand_raiser", "score"]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "journey"


def _priority_placement(task_queue: str | None) -> dict[str, Any]:
    """``start_child_workflow`` arguments putting a child on the priority queue, if any."""
    if task_queue is None:
        return {}
    return {"task_queue": task_queue, "priority": Priority(priority_key=1)}


class Children:
    """Starts, informs and stops the contact's child workflows."""

    def __init__(self, state: ContactState) -> None:
        self.state = state

    # ---- journeys --------------------------------------------------------------------------

    async def start_journey(
        self, enrollment: Enrollment, pinned: PinnedJourney | None, now: datetime
    ) -> None:
        """Start the enrollment's JourneyWorkflow on its pinned definition version."""
        if pinned is None:
            return
        try:
            definition = parse_journey({**pinned.body, "version": pinned.version}, pinned.name)
        except ConfigError as exc:
            workflow.logger.warning("journey %s not started: %s", pinned.name, exc)
            return
        state = self.state
        number = enrollment.enrollment_id.rsplit("-", 1)[-1]
        workflow_id = f"journey-{state.contact_id}-{_slug(enrollment.journey)}-{number}"
        enrollment.workflow_id = workflow_id
        zone = state.traits.get("timezone")
        await workflow.start_child_workflow(
            "JourneyWorkflow",
            JourneyInput(
                contact_id=state.contact_id,
                enrollment_id=enrollment.enrollment_id,
                definition=definition,
                facts=facts_of(state, now),
                consent=state.consent,
                time_zone=zone if isinstance(zone, str) else "UTC",
            ),
            id=workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"journey {enrollment.journey} v{enrollment.version}",
        )

    async def stop_journey(self, enrollment: Enrollment, reason: str, *, pause: bool) -> None:
        """Tell a running journey to exit (or pause)."""
        if enrollment.workflow_id is None:
            return
        handle = workflow.get_external_workflow_handle(enrollment.workflow_id)
        await handle.signal("stop", JourneyStop(reason=reason, pause=pause))

    async def inform_journeys(self, changes: Changes, now: datetime) -> None:
        """Send the latest facts (and new events, for ``wait_for``) to running journeys."""
        running = [e for e in self.state.enrollments if e.workflow_id and not e.paused]
        if not running:
            return
        update = JourneyContactUpdate(
            facts=facts_of(self.state, now),
            consent=self.state.consent,
            new_events=[_record(e) for e in changes.applied_events],
        )
        for enrollment in running:
            assert enrollment.workflow_id is not None
            handle = workflow.get_external_workflow_handle(enrollment.workflow_id)
            await handle.signal("contact_changed", update)

    # ---- sales handoff -----------------------------------------------------------------------

    def wants_handoff(self, changes: Changes) -> bool:
        """A handoff starts when the contact enters MQL (by score or a raised hand)."""
        entered = any(
            e.stage == HANDOFF_TRIGGER_STAGE and not e.override for e in changes.stage_entries
        )
        active = self.state.handoff is not None and self.state.handoff.outcome is None
        return entered and not active

    async def start_handoff(
        self, hand_raiser: bool, reason: str, now: datetime, task_queue: str | None = None
    ) -> None:
        """Start the HandoffWorkflow (routing, notification, SLA) for this contact.

        On ``task_queue`` (the priority queue) with task priority 1 when given: ordinary
        traffic on the contact's queue must not delay the rep's notification. ``None`` (a
        config pinned before the priority queue existed) starts it as before, so replay holds.
        """
        state = self.state
        state.handoff_counter += 1
        handoff_id = f"{state.contact_id}-h{state.handoff_counter}"
        workflow_id = f"handoff-{state.contact_id}-{state.handoff_counter}"
        trigger: Trigger = "hand_raiser" if hand_raiser else "score"
        scores = state.scores
        history = state.demand_history
        state.handoff = HandoffRef(
            handoff_id=handoff_id, workflow_id=workflow_id, started_at=now, trigger=trigger
        )
        await workflow.start_child_workflow(
            "HandoffWorkflow",
            HandoffInput(
                contact_id=state.contact_id,
                handoff_id=handoff_id,
                trigger=trigger,
                reason=reason,
                top_behaviours=list(scores.top_behaviours) if scores else [],
                demand_state=state.demand_state,
                demand_from=history[-1].previous if history else None,
                scores=({"fit": scores.fit, "engagement": scores.engagement} if scores else {}),
                lead=self._routing_input(trigger, now),
                mql_at=now,
            ),
            id=workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"sales handoff ({trigger})",
            **_priority_placement(task_queue),
        )

    def _routing_input(self, trigger: Trigger, now: datetime) -> RoutingInput:
        facts = facts_of(self.state, now)
        segment = self.state.scores.segment if self.state.scores else None
        try:
            lead = RoutingInput.from_facts(facts, trigger)
            return lead.model_copy(update={"segment": lead.segment or segment})
        except (ValidationError, ValueError):
            # Unusable firmographics route by round-robin/fallback rather than fail the task.
            return RoutingInput(contact_id=self.state.contact_id, trigger=trigger)

    async def forward_sales(self, changes: Changes) -> None:
        """Sales activity reaches the running handoff (first touch, accept, reject, close)."""
        handoff = self.state.handoff
        if handoff is None or handoff.outcome is not None:
            return
        sales = [e for e in changes.applied_events if e.kind == "sales"]
        handle = workflow.get_external_workflow_handle(handoff.workflow_id)
        for event in sales:
            activity = SalesActivity(
                name=event.name, at=event.timestamp, properties=event.properties
            )
            await handle.signal("sales_activity", activity)

    def apply_handoff_update(self, update: HandoffUpdate) -> None:
        """Keep the owner and SLA the handoff reports (shown by ``contacts show``)."""
        handoff = self.state.handoff
        if handoff is None or handoff.handoff_id != update.handoff_id:
            return
        handoff.owner = update.owner
        handoff.team = update.team
        handoff.sla_state = update.sla_state
        handoff.deadline = update.deadline
        handoff.first_contact_at = update.first_contact_at
        handoff.outcome = update.outcome
        handoff.outcome_reason = update.outcome_reason


def _record(event: ContactEvent) -> EventRecord:
    return EventRecord(name=event.name, at=event.timestamp, properties=event.properties)
