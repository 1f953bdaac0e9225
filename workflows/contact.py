"""ContactWorkflow: one long-lived entity workflow per known contact.

It owns the contact's live state (profile facts without personal data, event counts, lifecycle
stage, consent, durable wakeups). Events arrive in batches by signal; a repeated messageId is
ignored, also across continue-as-new (the window of seen ids travels with the state).
Deterministic code only: no I/O, no clocks but ``workflow.now()``, no randomness.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.contact_children import Children

with workflow.unsafe.imports_passed_through():
    from models.activities import RecordStagesInput
    from models.changes import ContactChanges
    from models.contact import (
        ContactConfig,
        ContactInput,
        ContactState,
        Enrollment,
        Explanation,
        PastEnrollmentEntry,
        Renurture,
        Stage,
        Wakeup,
    )
    from models.decisions import Decision, EventOccurred, Occurrence, Review
    from models.events import (
        ContactEvent,
        ContactMerged,
        EventBatch,
        StageOverride,
        StaticListChange,
    )
    from models.handoff import HandoffUpdate
    from models.journeys import JourneyRequest
    from models.rules_io import DecideStepInput, DecideStepResult, PinnedJourney
    from models.search_attributes import CONTACT_ID, DEMAND_STATE, LIFECYCLE_STAGE, OWNER
    from revops.contact_state import (
        Changes,
        apply_events,
        decision_base,
        derive,
        explain_now,
        fire_due_wakeups,
        next_wakeup,
        occurrences_of,
        override_stage,
        set_static_membership,
    )

__all__ = ["ENROLL_REQUEST_EVENT", "ContactWorkflow"]

ENROLL_REQUEST_EVENT = "Journey Enroll Requested"
"""A journey's ``enroll`` step: journeys enrollable that way trigger on this event."""

_STORE_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="ContactWorkflow")
class ContactWorkflow:
    """Entity workflow of one contact; see the module docstring."""

    @workflow.init
    def __init__(self, data: ContactInput) -> None:
        self._state = data.state or ContactState(
            contact_id=data.contact_id, created_at=workflow.now()
        )
        self._config: ContactConfig | None = data.config
        self._inbox: list[ContactEvent] = list(data.pending)
        self._overrides: list[StageOverride] = []
        self._list_changes: list[StaticListChange] = []
        self._wanted_config: str | None = None
        self._derive = False
        self._decide = False
        self._local = False
        self._published: list[tuple[str, str | None]] | None = None
        self._children = Children(self._state)
        self._requests: list[JourneyRequest] = []
        self._handoff_updates: list[HandoffUpdate] = []
        self._journey_handoff = False

    @workflow.run
    async def run(self, data: ContactInput) -> None:
        """Process events and wakeups until it is time to continue as new."""
        # Scores, lists, demand states and the MQL gate (Parts C and G) came after the first
        # histories were recorded: executions started before keep the earlier behaviour.
        self._derive = workflow.patched("derived-facts-v1")
        # Rule decisions, journeys and the sales handoff (Parts D, E, F) came later still.
        self._decide = self._derive and workflow.patched("journey-decisions-v1")
        # Recording and deciding became local activities: one workflow task per step instead
        # of three, so a busy queue keeps up (speed-to-lead under load).
        self._local = self._decide and workflow.patched("local-step-activities-v1")
        if self._config is None:
            self._config = await self._load_config()
        self._publish_search_attributes()
        while not self._should_continue_as_new():
            await self._wait_for_work()
            if self._state.merged_into is not None:
                break
            await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state.merged_into is not None:
            return  # merged into another contact, which owns this one's ids and history now
        self._state.runs += 1
        workflow.continue_as_new(
            ContactInput(
                contact_id=self._state.contact_id,
                state=self._state,
                config=self._config,
                pending=self._inbox,
            )
        )

    @workflow.signal(name="events")
    def events(self, batch: EventBatch) -> None:
        """Queue a batch of events; applied in the same workflow task."""
        self._inbox.extend(batch.events)
        if batch.config_version and self._config and batch.config_version != self._config.version:
            self._wanted_config = batch.config_version

    @workflow.signal(name="merged_into")
    def merged_into(self, notice: ContactMerged) -> None:
        """An alias merged this contact into another: stop; the survivor replays its events."""
        self._state.merged_into = notice.contact_id

    @workflow.signal(name="override_stage")
    def override_stage(self, change: StageOverride) -> None:
        """An operator's manual stage change (audited, reason required)."""
        self._overrides.append(change)

    @workflow.signal(name="set_list_membership")
    def set_list_membership(self, change: StaticListChange) -> None:
        """Add to or remove from a static or suppression list."""
        self._list_changes.append(change)

    @workflow.signal(name="journey_request")
    def journey_request(self, request: JourneyRequest) -> None:
        """A journey step asks the contact to change itself (trait, list, enroll, handoff)."""
        self._requests.append(request)

    @workflow.signal(name="handoff_update")
    def handoff_update(self, update: HandoffUpdate) -> None:
        """The sales handoff reports its owner and SLA state."""
        self._handoff_updates.append(update)

    @workflow.signal(name="definitions_changed")
    def definitions_changed(self, revision: str) -> None:
        """New definitions were deployed: reload them and re-evaluate (lists, scores)."""
        self._wanted_config = revision

    @workflow.query(name="explain")
    def explain(self) -> Explanation:
        """Score card and gate decision right now, from the pinned definitions."""
        if self._config is None:
            return Explanation(at=workflow.now())
        return explain_now(self._state, self._config, workflow.now())

    @workflow.query(name="state")
    def state(self) -> ContactState:
        """The contact's live state."""
        return self._state

    async def _wait_for_work(self) -> None:
        wake_at = next_wakeup(self._state)
        timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
        with suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(
                    self._inbox
                    or self._overrides
                    or self._list_changes
                    or self._wanted_config is not None
                    or self._state.merged_into is not None
                    or self._requests
                    or self._handoff_updates
                ),
                timeout=timeout,
            )

    async def _step(self) -> None:
        reloaded = self._wanted_config is not None
        if reloaded:
            self._config = await self._load_config()
            self._wanted_config = None
        assert self._config is not None
        now = workflow.now()
        inbox, self._inbox = self._inbox, []
        changes = apply_events(self._state, inbox, self._config, now)
        self._apply_overrides(changes, now)
        fired = fire_due_wakeups(
            self._state, now, self._config.renurture_list if self._derive else None
        )
        if self._derive:
            extra = self._take_requests(changes, now) if self._decide else []
            await self._derive_and_record(changes, _cause(inbox, fired, reloaded), now)
            if self._decide:
                await self._decide_and_apply(changes, extra, bool(fired) or reloaded, now)
                await self._children.forward_sales(changes)
                await self._children.inform_journeys(changes, now)
            return
        if changes.stage_changed:
            self._publish_search_attributes()
            await workflow.execute_activity(
                "record_stage_entries",
                RecordStagesInput(contact_id=self._state.contact_id, entries=changes.stage_entries),
                start_to_close_timeout=_STORE_TIMEOUT,
                summary=f"record stage {self._state.stage}",
            )

    async def _derive_and_record(self, changes: Changes, cause: str, now: datetime) -> None:
        assert self._config is not None
        for change in self._list_changes:
            set_static_membership(self._state, change.list_name, member=change.member)
        self._list_changes.clear()
        before = self._state.demand_state
        derive(self._state, self._config, now, changes, cause)
        if changes.stage_changed or self._state.demand_state != before:
            self._publish_search_attributes()
        if self._decide:
            await self._maybe_start_handoff(changes, now)
        record = ContactChanges(
            contact_id=self._state.contact_id,
            stage_entries=changes.stage_entries,
            score=changes.score,
            list_changes=changes.list_changes,
            demand_states=changes.demand_states,
        )
        if not record.empty:
            await self._store_call("record_contact_changes", record, None, _summary(changes))

    async def _decide_and_apply(
        self, changes: Changes, extra: list[Occurrence], review: bool, now: datetime
    ) -> None:
        """Ask the rules what this step means for journeys, then apply the answer."""
        occurrences = [*occurrences_of(changes), *extra]
        if not occurrences and review and self._state.enrollments:
            occurrences = [Review()]
        if not occurrences:
            return
        try:
            result: DecideStepResult = await self._store_call(
                "decide_step",
                DecideStepInput(base=decision_base(self._state, now), occurrences=occurrences),
                DecideStepResult,
                f"decide {len(occurrences)} occurrence(s)",
            )
        except ActivityError as exc:
            # Invalid active definitions: keep the contact running; the error is in the UI.
            workflow.logger.warning("decision failed: %s", exc.cause or exc)
            return
        for decision in result.decisions:
            await self._apply_decision(decision, result.journeys, now)

    async def _apply_decision(
        self, decision: Decision, journeys: dict[str, PinnedJourney], now: datetime
    ) -> None:
        state = self._state
        reasons = {a.journey: a.reason for a in decision.actions if a.journey}
        leaving = set(decision.journeys("exit"))
        pausing = set(decision.journeys("pause"))
        for enrollment in state.enrollments:
            if enrollment.journey in leaving or (
                enrollment.journey in pausing and not enrollment.paused
            ):
                pause = enrollment.journey in pausing and enrollment.journey not in leaving
                enrollment.paused = pause
                reason = reasons.get(enrollment.journey, "rules")
                await self._children.stop_journey(enrollment, reason, pause=pause)
        state.enrollments = [e for e in state.enrollments if e.journey not in leaving]
        for action in decision.of_kind("enroll"):
            if action.journey is None:
                continue
            state.enrollment_counter += 1
            pinned = journeys.get(action.journey)
            enrollment = Enrollment(
                enrollment_id=f"{state.contact_id}-{state.enrollment_counter}",
                journey=action.journey,
                version=pinned.version if pinned else action.version or 1,
                priority=action.priority or 0,
                exclusivity_group=action.exclusivity_group,
                enrolled_at=now,
            )
            state.enrollments.append(enrollment)
            state.past_enrollments.append(
                PastEnrollmentEntry(journey=action.journey, enrolled_at=now)
            )
            await self._children.start_journey(enrollment, pinned, now)
        self._publish_search_attributes()

    async def _maybe_start_handoff(self, changes: Changes, now: datetime) -> None:
        """Routing starts in the workflow task that made the contact an MQL (or on request)."""
        children = self._children
        assert self._config is not None
        queue = self._config.handoff_task_queue
        if self._config.auto_handoff and children.wants_handoff(changes):
            entry = next(e for e in reversed(changes.stage_entries) if e.stage == Stage.MQL)
            hand_raiser = entry.reason.startswith("Hand-raiser")
            await children.start_handoff(hand_raiser, entry.reason, now, queue)
            self._publish_search_attributes()
        elif self._journey_handoff and (
            self._state.handoff is None or self._state.handoff.outcome is not None
        ):
            await children.start_handoff(False, "a journey's handoff step", now, queue)
            self._publish_search_attributes()
        self._journey_handoff = False

    def _take_requests(self, changes: Changes, now: datetime) -> list[Occurrence]:
        """Apply what journeys and the handoff asked for; returns occurrences to decide."""
        state = self._state
        occurrences: list[Occurrence] = []
        for request in self._requests:
            if request.kind == "set_trait" and request.name:
                state.traits[request.name] = request.value
            elif request.kind in ("list_add", "list_remove") and request.name:
                member = request.kind == "list_add"
                set_static_membership(state, request.name, member=member)
            elif request.kind == "enroll" and request.name:
                occurrences.append(
                    EventOccurred(name=ENROLL_REQUEST_EVENT, properties={"journey": request.name})
                )
            elif request.kind == "handoff":
                self._journey_handoff = True
            elif request.kind == "finished":
                state.enrollments = [
                    e for e in state.enrollments if e.enrollment_id != request.enrollment_id
                ]
        self._requests.clear()
        for update in self._handoff_updates:
            self._children.apply_handoff_update(update)
            if update.outcome == "rejected":
                reason = f"rejected by sales: {update.outcome_reason or 'no reason given'}"
                state.renurture = Renurture(since=now, reason=reason)
                assert self._config is not None
                set_static_membership(state, self._config.renurture_list, member=True)
        if self._handoff_updates:
            self._publish_search_attributes()
        self._handoff_updates.clear()
        return occurrences

    def _apply_overrides(self, changes: Changes, now: datetime) -> None:
        for change in self._overrides:
            entry = override_stage(
                self._state, Stage(change.stage), now, change.reason, change.actor
            )
            changes.stage_entries.append(entry)
        self._overrides.clear()

    async def _store_call(
        self,
        name: str,
        argument: Any,
        result_type: type[Any] | None,
        summary: str,
        *,
        local: bool | None = None,
    ) -> Any:
        """A step's short store call: a local activity (no trip through the server's queue)
        for runs with the ``local-step-activities-v1`` patch, a regular one before it."""
        args = [] if argument is None else [argument]
        run_local = self._local if local is None else local
        call = workflow.execute_local_activity if run_local else workflow.execute_activity
        return await call(
            name,
            args=args,
            start_to_close_timeout=_STORE_TIMEOUT,
            result_type=result_type,
            summary=summary,
        )

    async def _load_config(self) -> ContactConfig:
        # Loading the definitions became local later than the step's calls: its own patch.
        local = self._local and workflow.patched("local-config-load-v1")
        config: ContactConfig = await self._store_call(
            "load_contact_config", None, ContactConfig, "load definitions", local=local
        )
        return config

    def _publish_search_attributes(self) -> None:
        updates = [CONTACT_ID.value_set(self._state.contact_id)]
        if self._state.stage is not None:
            updates.append(LIFECYCLE_STAGE.value_set(self._state.stage.value))
        if self._derive and self._state.demand_state is not None:
            updates.append(DEMAND_STATE.value_set(self._state.demand_state))
        handoff = self._state.handoff
        if self._decide and handoff is not None and handoff.owner:
            updates.append(OWNER.value_set(handoff.owner))
        published = [(u.key.name, u.value) for u in updates]
        if published == self._published and workflow.patched("publish-on-change-v1"):
            return  # unchanged: an upsert would only add a history event
        self._published = published
        workflow.upsert_search_attributes(updates)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._config.history_limit if self._config else ContactConfig().history_limit
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit


def _summary(changes: Changes) -> str:
    """A readable activity summary for the Temporal UI (no personal data)."""
    parts = []
    if changes.stage_entries:
        parts.append("stage " + changes.stage_entries[-1].stage.value)
    if changes.score is not None:
        parts.append(f"scores {changes.score.fit:.0f}/{changes.score.engagement:.0f}")
    if changes.list_changes:
        parts.append(f"{len(changes.list_changes)} list change(s)")
    if changes.demand_states:
        parts.append("demand " + changes.demand_states[-1].state)
    return "record " + ", ".join(parts)


def _cause(inbox: list[ContactEvent], fired: list[Wakeup], reloaded: bool) -> str:
    """What triggered a step, in words (kept with the score history)."""
    if inbox:
        return ", ".join(sorted({e.name for e in inbox}))
    if fired:
        return "timer: " + ", ".join(w.kind for w in fired)
    if reloaded:
        return "definitions changed"
    return "time passed (decay, windows)"
