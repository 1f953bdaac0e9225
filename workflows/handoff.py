"""HandoffWorkflow: one sales handoff, from the MQL moment to the lead's outcome.

Started by the contact workflow as a child (id ``handoff-<contact_id>-<n>``) in the workflow
task in which the contact became an MQL or raised a hand. It routes at once (an activity holds
the round-robin lock, so concurrent handoffs stay fair), tells the owner what they need to know,
then sleeps on durable timers in business time: reminder, breach (escalate to the manager),
second breach (reassign, new SLA), and the no-reply warning. Sales activity arrives by signal
and ends the SLA (first touch, accept) or the handoff (reject, closed won, closed lost).

The definitions are pinned when the handoff starts (passed in, or loaded once by the first
activity), so a redeploy never changes a running SLA. Business-time arithmetic runs here, in
workflow code, through the pure ``handoff.routing`` / ``handoff.sla`` functions.
Deterministic code only: no I/O, no clock but ``workflow.now()``.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.handoff import HandoffActivities
    from handoff.contract import (
        AssignRequest,
        AssignResult,
        HandoffInput,
        HandoffResult,
        HandoffResume,
        HandoffState,
        HandoffUpdate,
        Notice,
        ReleaseRequest,
        SalesActivity,
        SlaStatus,
    )
    from handoff.notice import build_notice
    from handoff.routing import RoutingDecision, RoutingInput, RoutingStage, sla_for
    from handoff.settings import SQL_STAGE_ENTERED, HandoffConfig
    from handoff.sla import (
        CatchUp,
        NoticePlan,
        apply_sales_activity,
        apply_timer,
        begin_stage,
        due_timer,
        next_wakeup,
        record_of,
        result_of,
        start_turn,
        status_of,
        update_of,
    )
    from models.search_attributes import CONTACT_ID, OWNER, SLA_STATE

__all__ = [
    "AE_STAGE_PATCH",
    "OUTAGE_CATCH_UP_PATCH",
    "SLA_STATE_PATCH",
    "HandoffParent",
    "HandoffWorkflow",
]

AE_STAGE_PATCH = "seeds-ae-stage"
"""The SDR's qualification hands the lead to an Account Executive (routing's ``ae`` teams)."""
SLA_STATE_PATCH = "ingest-sla-search-attribute"
"""Publishes the ``SlaState`` search attribute (handoffs started before it do not)."""

OUTAGE_CATCH_UP_PATCH = "outage-one-escalation"
"""Timers due together (workers were down) send no stale reminder and one escalation."""

_STORE_TIMEOUT = timedelta(seconds=30)
_NOTICE_TIMEOUT = timedelta(seconds=60)
_NOTICE_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10))
"""A channel that keeps failing must not hold the SLA clock: give up after a few tries."""


class HandoffParent:
    """What a handoff's parent handles: the contact workflow (a stand-in in tests)."""

    @workflow.signal(name="handoff_update")
    def handoff_update(self, update: HandoffUpdate) -> None:
        """The owner or the SLA state changed."""
        raise NotImplementedError


@workflow.defn(name="HandoffWorkflow")
class HandoffWorkflow:
    """One sales handoff; see the module docstring."""

    @workflow.init
    def __init__(self, data: HandoffInput) -> None:
        resume = data.resume
        self._data = data.model_copy(update={"resume": None, "config": None})
        self._state = resume.state if resume else HandoffState()
        self._config: HandoffConfig | None = resume.config if resume else data.config
        self._inbox: list[SalesActivity] = list(resume.inbox) if resume else []
        self._told_parent: HandoffUpdate | None = None
        self._owner_attribute: str | None = None
        self._sla_attribute: str | None = None
        self._last_decision: RoutingDecision | None = None

    @workflow.run
    async def run(self, data: HandoffInput) -> HandoffResult:
        """Route, notify, then follow the SLA and sales activity until the lead's outcome."""
        workflow.upsert_search_attributes([CONTACT_ID.value_set(self._data.contact_id)])
        if not self._state.turns:
            await self._assign_first_owner()
        while self._state.outcome is None and not self._should_continue_as_new():
            await self._wait_for_work()
            await self._apply_sales_activity()
            await self._fire_due_timers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state.outcome is None:
            workflow.continue_as_new(self._next_run())
        return result_of(self._data, self._state)

    @workflow.signal(name="sales_activity")
    def sales_activity(self, activity: SalesActivity) -> None:
        """Queue one sales activity (forwarded by the contact workflow)."""
        self._inbox.append(activity)

    @workflow.query(name="sla")
    def sla(self) -> SlaStatus:
        """Owner and SLA right now."""
        return status_of(self._data, self._state)

    # ---- steps -------------------------------------------------------------------------------

    async def _assign_first_owner(self) -> None:
        result = await self._assign(step=0)
        if self._config is None:
            self._config = result.config
        decision = result.decision
        plan = sla_for(self._pinned.routing, self._data.lead, self._data.mql_at, decision=decision)
        turn = start_turn(self._state, decision, plan, workflow.now())
        notice = NoticePlan("assigned", turn.owner, f"assigned-{turn.seq}")
        await self._commit([notice], decision)

    async def _reassign(self) -> list[NoticePlan]:
        """Second breach: the next rep (never one who had the lead) gets it on a new SLA."""
        tried = [turn.owner for turn in self._state.turns]
        result = await self._assign(step=len(tried), tried=tried)
        now = workflow.now()
        plan = sla_for(
            self._pinned.routing, self._lead_in(self._state.stage), now, decision=result.decision
        )
        turn = start_turn(self._state, result.decision, plan, now)
        self._state.reassignments += 1
        self._last_decision = result.decision
        return [
            NoticePlan("assigned", turn.owner, f"assigned-{turn.seq}"),
            NoticePlan("reassigned_away", tried[-1], f"reassigned-away-{turn.seq}"),
        ]

    async def _wait_for_work(self) -> None:
        wake_at = next_wakeup(self._state, self._pinned.settings)
        timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
        if timeout == timedelta(0):
            return
        with suppress(TimeoutError):
            await workflow.wait_condition(lambda: bool(self._inbox), timeout=timeout)

    async def _begin_ae_stage(self) -> list[NoticePlan]:
        """The SDR qualified the lead: an AE is routed (territory, segment, account owner,
        deal size) and gets the lead on the AE stage's SLA; the SDR stays as the source."""
        lead = self._lead_in("ae")
        result = await self._assign(step=len(self._state.turns), lead=lead, fresh=True)
        now = workflow.now()
        plan = sla_for(self._pinned.routing, lead, now, decision=result.decision)
        turn = begin_stage(self._state, result.decision, plan, now)
        self._last_decision = result.decision
        return [NoticePlan("assigned", turn.owner, f"assigned-{turn.seq}")]

    def _stages(self, activity: SalesActivity) -> bool:
        """Whether this activity may hand the lead to an AE (patched: 1.0.0 ignored it)."""
        config = self._pinned
        names = (config.settings.qualify_event, SQL_STAGE_ENTERED)
        if activity.name not in names or not config.routing.has_stage("ae"):
            return False
        return workflow.patched(AE_STAGE_PATCH)

    async def _apply_sales_activity(self) -> None:
        if not self._inbox:
            return
        inbox, self._inbox = self._inbox, []
        plans: list[NoticePlan] = []
        release = changed = False
        decision: RoutingDecision | None = None
        for activity in inbox:
            step = apply_sales_activity(
                self._state,
                activity,
                workflow.now(),
                self._pinned.settings,
                stages=self._stages(activity),
            )
            plans += step.notices
            if step.qualify:
                if release or step.release:
                    await self._release("qualified")
                release, changed = False, True
                plans += await self._begin_ae_stage()
                decision = self._last_decision
                continue
            release |= step.release
            changed |= step.changed
        if release:
            await self._release(self._state.outcome or "accepted")
        if changed or plans:
            await self._commit(plans, decision)

    async def _fire_due_timers(self) -> None:
        settings = self._pinned.settings
        catch_up: CatchUp | None = None
        while (kind := due_timer(self._state, workflow.now(), settings)) is not None:
            if catch_up is None and workflow.patched(OUTAGE_CATCH_UP_PATCH):
                catch_up = CatchUp()
            step = apply_timer(self._state, kind, workflow.now(), settings, catch_up)
            plans = list(step.notices)
            decision = None
            if step.reassign:
                plans += await self._reassign()
                decision = self._last_decision
            if step.release:
                await self._release(self._state.outcome or "expired")
            await self._commit(plans, decision)

    # ---- effects -------------------------------------------------------------------------------

    async def _commit(
        self, plans: list[NoticePlan], decision: RoutingDecision | None = None
    ) -> None:
        """Record the new state, tell the parent, update the Owner attribute, send notices."""
        self._state.revision += 1
        self._publish_owner()
        self._publish_sla_state()
        note = _routing_note(decision)
        notices = [
            notice
            for plan in plans
            if (notice := build_notice(plan, self._data, self._state, self._pinned, note))
        ]
        work = [self._record(), *(self._notify(n) for n in notices), self._tell_parent()]
        await asyncio.gather(*work)

    async def _assign(
        self,
        step: int,
        tried: list[str] | None = None,
        lead: RoutingInput | None = None,
        fresh: bool = False,
    ) -> AssignResult:
        request = AssignRequest(
            handoff_id=self._data.handoff_id,
            contact_id=self._data.contact_id,
            step=step,
            lead=lead or self._data.lead,
            now=workflow.now(),
            tried=tried or [],
            config=self._config,
            fresh=fresh,
        )
        # A local activity: routing is one short store transaction, idempotent per step, and
        # running it in this worker saves a round trip through the server (speed-to-lead).
        return await workflow.execute_local_activity_method(
            HandoffActivities.assign_owner,
            request,
            start_to_close_timeout=_STORE_TIMEOUT,
            summary="route the lead" if step == 0 else f"reassign (step {step})",
        )

    async def _release(self, reason: str) -> None:
        turn = self._state.turn
        if turn is None or self._state.released:
            return
        self._state.released = True
        request = ReleaseRequest(
            handoff_id=self._data.handoff_id, rep_id=turn.owner, reason=reason, stage=turn.stage
        )
        await workflow.execute_activity_method(
            HandoffActivities.release_owner,
            request,
            start_to_close_timeout=_STORE_TIMEOUT,
            summary=f"release open lead ({reason})",
        )

    async def _record(self) -> None:
        await workflow.execute_activity_method(
            HandoffActivities.record_sla,
            record_of(self._data, self._state),
            start_to_close_timeout=_STORE_TIMEOUT,
            summary=f"record SLA ({self._state.state})",
        )

    async def _notify(self, notice: Notice) -> None:
        try:
            await workflow.execute_activity_method(
                HandoffActivities.send_handoff_notice,
                notice,
                start_to_close_timeout=_NOTICE_TIMEOUT,
                retry_policy=_NOTICE_RETRY,
                summary=f"{notice.kind} to {notice.to.id}",
            )
        except FailureError as exc:
            workflow.logger.warning("handoff notice failed: %s (%s)", notice.kind, exc)

    async def _tell_parent(self) -> None:
        """Signal ``handoff_update`` to the contact workflow when owner or SLA state changed."""
        parent = workflow.info().parent
        update = update_of(self._data, self._state)
        if parent is None or update == self._told_parent:
            return
        self._told_parent = update
        # By workflow id only: the contact workflow continues as new, its run id changes.
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        try:
            await handle.signal(HandoffParent.handoff_update, update)
        except FailureError as exc:  # the contact merged away or was closed
            workflow.logger.warning("handoff_update not delivered: %s", exc)

    def _publish_owner(self) -> None:
        turn = self._state.turn
        if turn is not None and turn.owner != self._owner_attribute:
            self._owner_attribute = turn.owner
            workflow.upsert_search_attributes([OWNER.value_set(turn.owner)])

    def _publish_sla_state(self) -> None:
        """``SlaState`` follows the SLA state, so support can filter breached handoffs in the
        Temporal UI. Handoffs started before this release keep their histories (the patch)."""
        state = self._state.state
        if state != self._sla_attribute and workflow.patched(SLA_STATE_PATCH):
            self._sla_attribute = state
            workflow.upsert_search_attributes([SLA_STATE.value_set(state)])

    # ---- helpers -------------------------------------------------------------------------------

    def _lead_in(self, stage: RoutingStage) -> RoutingInput:
        """The lead as routing sees it in ``stage`` (an AE's: with the deal size the SDR gave
        when qualifying it)."""
        source = self._state.source
        if stage == "sdr" or source is None:
            return self._data.lead
        size = source.deal_size if source.deal_size is not None else self._data.lead.deal_size
        return self._data.lead.model_copy(update={"stage": "ae", "deal_size": size})

    @property
    def _pinned(self) -> HandoffConfig:
        assert self._config is not None, "definitions are pinned by the first activity"
        return self._config

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._pinned.settings.history_limit
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _next_run(self) -> HandoffInput:
        resume = HandoffResume(state=self._state, config=self._pinned, inbox=self._inbox)
        return self._data.model_copy(update={"resume": resume})


def _routing_note(decision: RoutingDecision | None) -> str | None:
    """The decisive step of the routing trace, for the new owner's notice."""
    if decision is None or not decision.trace:
        return None
    return decision.trace[-1]
