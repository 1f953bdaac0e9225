"""ContactWorkflow: one long-lived entity workflow per known contact.

It owns the contact's live state (profile facts without personal data, event counts, lifecycle
stage, consent, durable wakeups). Events arrive in batches by signal; a repeated messageId is
ignored, also across continue-as-new (the window of seen ids travels with the state).
The state changes only through the pure functions of ``contacts/``; this module gives the
Temporal commands they ask for (activities, children, signals, search attributes).
Deterministic code only: no I/O, no clocks but ``workflow.now()``, no randomness.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

from workflows.account_inbox import AccountInbox
from workflows.contact_children import Children, startable_journeys
from workflows.handoff import HandoffParent
from workflows.journey import JourneyParent

with workflow.unsafe.imports_passed_through():
    from accounts.contract import MemberUpdate
    from accounts.membership import leave_account, member_updates, receive_account
    from activities.accounts import AccountActivities
    from activities.effects import EffectActivities
    from activities.rules import RulesActivities
    from activities.store import ContactActivities
    from audience.accounts import account_workflow_id
    from audience.facts import AccountFacts
    from contacts.behaviour import Behaviour
    from contacts.contract import (
        ContactConfig,
        ContactInput,
        ContactState,
        DecideStepInput,
        Explanation,
        Wakeup,
    )
    from contacts.crm import crm_push, crm_reasons
    from contacts.enrollments import decide_enrollments
    from contacts.handoff import handoff_to_start
    from contacts.requests import take_requests
    from contacts.state import (
        Changes,
        apply_events,
        decision_base,
        derive,
        explain_now,
        fire_due,
        mark_merged,
        needs_review,
        next_run,
        next_wakeup,
        occurrences_of,
        override_stage,
        set_static_membership,
    )
    from handoff.contract import HandoffUpdate
    from journeys.contract import JourneyRequest
    from journeys.definition import JourneyDefinition
    from lifecycle.stages import Stage
    from models.changes import ContactChanges
    from models.decisions import Decision, Occurrence, Review
    from models.effects import EffectRequest
    from models.events import (
        ContactEvent,
        ContactMerged,
        EventBatch,
        StageOverride,
        StaticListChange,
    )
    from models.search_attributes import CONTACT_ID, DEMAND_STATE, LIFECYCLE_STAGE, OWNER

__all__ = ["EVENTS_SIGNAL", "ContactWorkflow"]

EVENTS_SIGNAL = "events"
"""The signal carrying event batches; named here for signal-with-start, which takes a name."""

_STORE_TIMEOUT = timedelta(seconds=30)

RECYCLE_POLICY_PATCH = "lifecycle-recycle-policy"
"""Recycles follow the recycle definition (per cause and reason; lists or journeys)."""
OPEN_OPPORTUNITY_PATCH = "lifecycle-open-opportunity"
"""The contact keeps the ``opportunity_open`` trait (no marketing until it closes)."""
RESUME_PAUSED_PATCH = "lifecycle-resume-paused"
"""Paused journeys are re-decided when what paused them may have ended, and resumed."""
INFORM_FIRST_PATCH = "lifecycle-inform-first"
"""Journeys hear a step's events before its decisions stop or pause them."""
SQL_QUALIFIES_PATCH = "seeds-sql-qualifies"
"""Entering SQL without the sales webhook's qualification tells the handoff (SDR to AE)."""
CRM_PUSH_PATCH = "crm-push"
"""With a CRM configured, a step the CRM cares about queues the contact's push (docs/crm.md)."""
ACCOUNTS_REACHED_KEPT = 4
"""Accounts a contact remembers having reached (its own and those it recently left)."""
ACCOUNTS_PATCH = "accounts-membership"
"""The contact belongs to an account, tells its AccountWorkflow and hears the account back."""
ACCOUNTS_FANIN_PATCH = "accounts-fanin-member"
"""A member's engagement is news to its account once a day, not once per behaviour name."""


@workflow.defn(name="ContactWorkflow")
class ContactWorkflow(JourneyParent, HandoffParent):
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
        self._published: list[tuple[str, str | None]] | None = None
        self._children = Children(self._state)
        self._requests: list[JourneyRequest] = []
        self._handoff_updates: list[HandoffUpdate] = []
        self._account_news: AccountFacts | None = None
        self._signals: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, data: ContactInput) -> None:
        """Process events and wakeups until it is time to continue as new."""
        if self._config is None:
            self._config = await self._load_config()
        self._publish_search_attributes()
        while not self._should_continue_as_new():
            await self._wait_for_work()
            if self._state.merged_into is not None:
                break
            await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: not self._signals)  # accounts told
        if self._state.merged_into is not None:
            await self._leave_account()
            return  # merged into another contact, which owns this one's ids and history now
        workflow.continue_as_new(
            ContactInput(
                contact_id=self._state.contact_id,
                state=next_run(self._state),
                config=self._config,
                pending=self._inbox,
            )
        )

    @workflow.signal(name=EVENTS_SIGNAL)
    def events(self, batch: EventBatch) -> None:
        """Queue a batch of events; applied in the same workflow task."""
        self._inbox.extend(batch.events)
        if batch.config_version and self._config and batch.config_version != self._config.version:
            self._wanted_config = batch.config_version

    @workflow.signal(name="merged_into")
    def merged_into(self, notice: ContactMerged) -> None:
        """An alias merged this contact into another: stop; the survivor replays its events."""
        mark_merged(self._state, notice.contact_id)

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

    @workflow.signal(name="account_changed")
    def account_changed(self, facts: AccountFacts) -> None:
        """The contact's account changed what its members see (engagement, committee, ...)."""
        self._account_news = facts

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
                    or self._account_news is not None
                ),
                timeout=timeout,
            )

    async def _step(self) -> None:
        reloaded = self._wanted_config is not None
        if reloaded:
            self._config = await self._load_config()
            self._wanted_config = None
        config = self._pinned
        behaviour = _behaviour()
        now = workflow.now()
        inbox, self._inbox = self._inbox, []
        changes = apply_events(self._state, inbox, config, now, behaviour)
        self._apply_overrides(changes, now)
        due = fire_due(self._state, now, config, behaviour)
        news, self._account_news = self._account_news, None
        if news is not None and behaviour.accounts:
            receive_account(self._state, news)
        requested = take_requests(
            self._state, self._requests, self._handoff_updates, config, now, behaviour
        )
        self._requests.clear()
        self._handoff_updates.clear()
        if requested.handoff_updated:
            self._publish_search_attributes()
        cause = _cause(inbox, due.wakeups, reloaded)
        await self._derive_and_record(changes, cause, requested.handoff, now, behaviour)
        await self._push_to_crm(changes, inbox, now)
        if behaviour.accounts:
            await self._tell_account(changes, now)
        asked = bool(due.wakeups) or reloaded or requested.review
        review = needs_review(self._state, changes, asked, behaviour)
        extra = [*requested.occurrences, *due.occurrences]
        if behaviour.inform_first:
            await self._children.inform_journeys(changes, now)
        await self._decide_and_apply(changes, extra, review, now)
        await self._children.forward_sales(changes, qualify_on_sql=behaviour.sql_qualifies)
        if not behaviour.inform_first:
            await self._children.inform_journeys(changes, now)

    async def _derive_and_record(
        self, changes: Changes, cause: str, handoff: bool, now: datetime, behaviour: Behaviour
    ) -> None:
        """Derived facts (scores, lists, demand state, the MQL gate), the handoff they may
        start (``handoff``: a journey asked for one), and one store call recording changes."""
        config = self._pinned
        for change in self._list_changes:
            set_static_membership(self._state, change.list_name, member=change.member)
        self._list_changes.clear()
        before = self._state.demand_state
        derive(self._state, config, now, changes, cause, behaviour)
        if changes.stage_changed or self._state.demand_state != before:
            self._publish_search_attributes()
        start = handoff_to_start(self._state, config, changes, handoff, now)
        if start is not None:
            await self._children.start_handoff(start, config.handoff_task_queue)
            self._publish_search_attributes()
        record = ContactChanges(
            contact_id=self._state.contact_id,
            stage_entries=changes.stage_entries,
            score=changes.score,
            list_changes=changes.list_changes,
            demand_states=changes.demand_states,
        )
        if not record.empty:
            await workflow.execute_local_activity_method(
                ContactActivities.record_contact_changes,
                record,
                start_to_close_timeout=_STORE_TIMEOUT,
                summary=_summary(changes),
            )

    async def _push_to_crm(
        self, changes: Changes, inbox: list[ContactEvent], now: datetime
    ) -> None:
        """Queue the contact's CRM push through the one send path when the CRM cares about
        what this step changed. The send only queues (a store write): the CRM's speed and rate
        limits are the pusher's business, never the contact's."""
        threshold = self._pinned.crm_score_threshold
        if threshold is None:
            return
        reasons = crm_reasons(self._state, changes, inbox, threshold)
        if not reasons or not workflow.patched(CRM_PUSH_PATCH):
            return
        snapshot, count = crm_push(self._state, reasons, now)
        request = EffectRequest(
            key=f"{self._state.contact_id}/crm/{count}",
            contact_id=self._state.contact_id,
            channel="crm",
            marketing=False,
            summary="crm push: " + ", ".join(reasons),
            context={"crm": snapshot.model_dump(mode="json")},
        )
        try:
            await workflow.execute_local_activity_method(
                EffectActivities.send_effect,
                request,
                start_to_close_timeout=_STORE_TIMEOUT,
                summary=request.summary,
            )
        except ActivityError as exc:
            workflow.logger.warning("crm push not queued: %s", exc.cause or exc)

    async def _leave_account(self) -> None:
        """A merged contact leaves its account (the survivor joins by its own facts). Only a
        contact that joined one (under the accounts patch) has anything to say."""
        if self._state.account_link is None or not workflow.patched(ACCOUNTS_PATCH):
            return
        update = leave_account(self._state, workflow.now())
        if update is not None:
            await self._send_to_account(update)
            await workflow.wait_condition(lambda: not self._signals)

    async def _tell_account(self, changes: Changes, now: datetime) -> None:
        """Fan-in: the contact's account (and one it left) hears its facts, no personal data."""
        accounts = self._pinned.accounts
        if accounts is None:
            return
        daily = workflow.patched(ACCOUNTS_FANIN_PATCH)
        for update in member_updates(self._state, changes.applied_events, accounts, now, daily):
            await self._send_to_account(update, in_task=daily)

    async def _send_to_account(self, update: MemberUpdate, in_task: bool = False) -> None:
        """The first time, a signal-with-start (a local activity: the account may not exist
        yet); then a signal the server delivers while the contact goes on (no round trip
        inside the contact's task), or (``in_task``, the ``accounts-fanin-member`` patch) a
        local activity signalling it: one round trip, but no workflow task of the contact
        for the signal's completion. A failed one makes the next step send its facts again."""
        reached = self._state.accounts_reached
        if update.account_id in reached and in_task:
            await self._signal_in_task(update)
            return
        if update.account_id in reached:
            task = asyncio.create_task(self._signal_account(update))
            self._signals.add(task)
            task.add_done_callback(self._signals.discard)
            return
        try:
            await workflow.execute_local_activity_method(
                AccountActivities.tell_account,
                update,
                start_to_close_timeout=_STORE_TIMEOUT,
                summary="left account" if update.left else "tell account",
            )
        except ActivityError as exc:
            # Temporal unreachable for long: the next step's update carries the facts.
            workflow.logger.warning("account not told: %s", exc.cause or exc)
            self._resend(update.account_id)
            return
        reached.append(update.account_id)
        del reached[:-ACCOUNTS_REACHED_KEPT]

    async def _signal_in_task(self, update: MemberUpdate) -> None:
        try:
            await workflow.execute_local_activity_method(
                AccountActivities.signal_account,
                update,
                start_to_close_timeout=_STORE_TIMEOUT,
                summary="left account" if update.left else "tell account",
            )
        except ActivityError as exc:
            workflow.logger.warning("account not told: %s", exc.cause or exc)
            self._resend(update.account_id)

    async def _signal_account(self, update: MemberUpdate) -> None:
        handle = workflow.get_external_workflow_handle(account_workflow_id(update.account_id))
        try:
            await handle.signal(AccountInbox.member_update, update)
        except FailureError as exc:
            workflow.logger.warning("account not told: %s", exc)
            self._resend(update.account_id)

    def _resend(self, account_id: str) -> None:
        """Forget that the account heard us: the next step starts it again if need be."""
        reached = self._state.accounts_reached
        if account_id in reached:
            reached.remove(account_id)
        link = self._state.account_link
        if link is not None and link.account_id == account_id:
            link.sent = ""

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
            result = await workflow.execute_local_activity_method(
                RulesActivities.decide_step,
                DecideStepInput(base=decision_base(self._state, now), occurrences=occurrences),
                start_to_close_timeout=_STORE_TIMEOUT,
                summary=f"decide {len(occurrences)} occurrence(s)",
            )
        except ActivityError as exc:
            # Invalid active definitions: keep the contact running; the error is in the UI.
            workflow.logger.warning("decision failed: %s", exc.cause or exc)
            return
        definitions = startable_journeys(result.journeys)
        for decision in result.decisions:
            await self._apply_decision(decision, definitions, now)

    async def _apply_decision(
        self, decision: Decision, definitions: dict[str, JourneyDefinition], now: datetime
    ) -> None:
        """Keep the decision in the state, then stop and start the journeys it names."""
        commands = decide_enrollments(self._state, decision, definitions, now)
        for stop in commands.stop:
            await self._children.stop_journey(stop)
        for workflow_id in commands.resume:
            await self._children.resume_journey(workflow_id, now)
        for start in commands.start:
            await self._children.start_journey(start, now)
        self._publish_search_attributes()

    def _apply_overrides(self, changes: Changes, now: datetime) -> None:
        for change in self._overrides:
            entry = override_stage(
                self._state, Stage(change.stage), now, change.reason, change.actor
            )
            changes.stage_entries.append(entry)
        self._overrides.clear()

    async def _load_config(self) -> ContactConfig:
        return await workflow.execute_local_activity_method(
            ContactActivities.load_contact_config,
            start_to_close_timeout=_STORE_TIMEOUT,
            summary="load definitions",
        )

    @property
    def _pinned(self) -> ContactConfig:
        assert self._config is not None, "definitions are loaded before the first step"
        return self._config

    def _publish_search_attributes(self) -> None:
        updates = [CONTACT_ID.value_set(self._state.contact_id)]
        if self._state.stage is not None:
            updates.append(LIFECYCLE_STAGE.value_set(self._state.stage.value))
        if self._state.demand_state is not None:
            updates.append(DEMAND_STATE.value_set(self._state.demand_state))
        handoff = self._state.handoff
        if handoff is not None and handoff.owner:
            updates.append(OWNER.value_set(handoff.owner))
        published = [(u.key.name, u.value) for u in updates]
        if published == self._published:
            return  # unchanged: an upsert would only add a history event
        self._published = published
        workflow.upsert_search_attributes(updates)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._config.history_limit if self._config else ContactConfig().history_limit
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit


def _behaviour() -> Behaviour:
    """The behaviours this execution runs with: on for new work, off replaying 1.0.0."""
    return Behaviour(
        recycle_policy=workflow.patched(RECYCLE_POLICY_PATCH),
        open_opportunity=workflow.patched(OPEN_OPPORTUNITY_PATCH),
        resume_paused=workflow.patched(RESUME_PAUSED_PATCH),
        inform_first=workflow.patched(INFORM_FIRST_PATCH),
        sql_qualifies=workflow.patched(SQL_QUALIFIES_PATCH),
        accounts=workflow.patched(ACCOUNTS_PATCH),
    )


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
