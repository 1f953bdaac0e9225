"""The contact workflow's children: journey enrollments and the sales handoff.

Deterministic workflow code, split out of ``workflows/contact.py`` so that module stays about
the contact itself. It only gives Temporal commands (start a child, signal one); what to start
or stop, and the state that goes with it, come from the pure functions in ``contacts/``.
Children outlive a continue-as-new of the contact (parent close policy ABANDON) and are
reached by workflow id, so a new run of the contact keeps talking to them. A child may end
while a signal to it is on its way (a journey reaching its goal as the rules stop it): such a
signal fails, is logged, and the contact carries on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import FailureError
from temporalio.workflow import ParentClosePolicy

from workflows.handoff import HandoffWorkflow
from workflows.journey import JourneyWorkflow

with workflow.unsafe.imports_passed_through():
    from audience.facts import EventRecord
    from contacts.contract import ContactState, PinnedJourney
    from contacts.enrollments import StartJourney, StopJourney
    from contacts.handoff import StartHandoff
    from contacts.state import Changes, facts_of
    from handoff.contract import SalesActivity
    from handoff.settings import SQL_STAGE_ENTERED
    from journeys.contract import JourneyContactUpdate, JourneyInput, JourneyStop
    from journeys.definition import JourneyDefinition
    from lifecycle.stages import Stage
    from models.events import ContactEvent

__all__ = ["Children", "startable_journeys"]


def startable_journeys(journeys: dict[str, PinnedJourney]) -> dict[str, JourneyDefinition]:
    """The definitions journey children start on (the rules activity validated them)."""
    return {name: pinned.definition for name, pinned in journeys.items()}


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

    async def start_journey(self, start: StartJourney, now: datetime) -> None:
        """Start the enrollment's JourneyWorkflow on its pinned definition version."""
        state, enrollment = self.state, start.enrollment
        assert enrollment.workflow_id is not None
        zone = state.traits.get("timezone")
        await workflow.start_child_workflow(
            JourneyWorkflow.run,
            JourneyInput(
                contact_id=state.contact_id,
                enrollment_id=enrollment.enrollment_id,
                definition=start.definition,
                facts=facts_of(state, now),
                consent=state.consent,
                time_zone=zone if isinstance(zone, str) else "UTC",
            ),
            id=enrollment.workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"journey {enrollment.journey} v{enrollment.version}",
        )

    async def stop_journey(self, stop: StopJourney) -> None:
        """Tell a running journey to exit (or pause)."""
        handle = workflow.get_external_workflow_handle_for(JourneyWorkflow.run, stop.workflow_id)
        stopping = JourneyStop(reason=stop.reason, pause=stop.pause)
        await _delivered(handle.signal(JourneyWorkflow.stop, stopping), "stop")

    async def resume_journey(self, workflow_id: str, now: datetime) -> None:
        """Resume a paused journey, after telling it the contact as it stands now (it heard
        nothing while paused: its goals and exit criteria look at these facts first)."""
        handle = workflow.get_external_workflow_handle_for(JourneyWorkflow.run, workflow_id)
        update = JourneyContactUpdate(facts=facts_of(self.state, now), consent=self.state.consent)
        await _delivered(handle.signal(JourneyWorkflow.contact_changed, update), "contact_changed")
        await _delivered(handle.signal(JourneyWorkflow.resume), "resume")

    async def inform_journeys(self, changes: Changes, now: datetime) -> None:
        """Send the latest facts (and new events, for ``wait_for``) to running journeys."""
        running = [e.workflow_id for e in self.state.enrollments if e.workflow_id and not e.paused]
        if not running:
            return
        update = JourneyContactUpdate(
            facts=facts_of(self.state, now),
            consent=self.state.consent,
            new_events=[_record(e) for e in changes.applied_events],
        )
        for workflow_id in running:
            handle = workflow.get_external_workflow_handle_for(JourneyWorkflow.run, workflow_id)
            await _delivered(handle.signal(JourneyWorkflow.contact_changed, update), "update")

    # ---- sales handoff -----------------------------------------------------------------------

    async def start_handoff(self, start: StartHandoff, task_queue: str | None = None) -> None:
        """Start the HandoffWorkflow (routing, notification, SLA) for this contact.

        On ``task_queue`` (the priority queue) with task priority 1 when given: ordinary
        traffic on the contact's queue must not delay the rep's notification. ``None`` (a
        config pinned before the priority queue existed) starts it on the contact's queue.
        """
        await workflow.start_child_workflow(
            HandoffWorkflow.run,
            start.input,
            id=start.workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"sales handoff ({start.input.trigger})",
            **_priority_placement(task_queue),
        )

    async def forward_sales(self, changes: Changes, *, qualify_on_sql: bool = False) -> None:
        """Sales activity reaches the running handoff (first touch, accept, reject, close).

        ``qualify_on_sql``: an SQL stage entered without a sales event (an operator's
        ``set-stage``) reaches it too, as ``SQL Stage Entered``: an AE takes the lead over
        (a handoff that has no AE stage, or is past it, ignores it)."""
        handoff = self.state.handoff
        if handoff is None or handoff.outcome is not None:
            return
        sales = [e for e in changes.applied_events if e.kind == "sales"]
        handle = workflow.get_external_workflow_handle_for(HandoffWorkflow.run, handoff.workflow_id)
        for event in sales:
            activity = SalesActivity(
                name=event.name, at=event.timestamp, properties=event.properties
            )
            await handle.signal(HandoffWorkflow.sales_activity, activity)
        entered = [e for e in changes.stage_entries if e.stage == Stage.SQL]
        if qualify_on_sql and entered and not sales:
            properties = {"via": "stage SQL", "reason": entered[-1].reason}
            activity = SalesActivity(
                name=SQL_STAGE_ENTERED, at=entered[-1].at, properties=properties
            )
            await handle.signal(HandoffWorkflow.sales_activity, activity)


async def _delivered(signal: Awaitable[None], what: str) -> None:
    """Send a signal to a child; one that ended meanwhile is logged, not a failure."""
    try:
        await signal
    except FailureError as exc:
        workflow.logger.warning("%s not delivered to a journey that ended: %s", what, exc)


def _record(event: ContactEvent) -> EventRecord:
    return EventRecord(name=event.name, at=event.timestamp, properties=event.properties)
