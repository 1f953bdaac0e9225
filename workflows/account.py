"""AccountWorkflow: one long-lived entity workflow per account (``account-<opaque id>``).

Members' contact workflows feed it (``member_update``, signal-with-start by the
``tell_account`` activity) with facts, never personal data. It keeps the engaged members in the
window, the buying committee, account scores, demand state and stage (``accounts/state.py``),
tells every member what changed for their conditions (``account_changed``), starts the account
play once per episode with a joint alert to the owner and marketing (Slack and CRM tasks,
through ``send_effect``), records itself for ``revops accounts``, sleeps on a durable timer
until the next member leaves the window, and continues as new before its history grows long.
Deterministic code only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

from workflows.account_inbox import AccountInbox
from workflows.contact import ContactWorkflow

with workflow.unsafe.imports_passed_through():
    from accounts.contract import (
        AccountAlert,
        AccountInput,
        AccountState,
        MemberUpdate,
    )
    from accounts.state import (
        account_facts,
        apply_updates,
        broadcast_step,
        next_wakeup,
        play_step,
    )
    from activities.accounts import AccountActivities, AccountChanges
    from activities.effects import EffectActivities
    from audience.accounts import AccountsConfig
    from audience.facts import AccountFacts
    from models.effects import EffectRequest, SlackPayload, TaskPayload
    from models.search_attributes import (
        ACCOUNT_ID,
        DEMAND_STATE,
        LIFECYCLE_STAGE,
        OWNER,
    )
    from revops.ids import contact_workflow_id

__all__ = ["AccountWorkflow"]

_STORE_TIMEOUT = timedelta(seconds=30)
LEAN_BROADCAST_PATCH = "accounts-fanin-broadcast"
"""Members hear the account when what their conditions read changed, not every engagement
time (``accounts.state.condition_key``, ``refresh_due``)."""
_SEND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


@workflow.defn(name="AccountWorkflow")
class AccountWorkflow(AccountInbox):
    """Entity workflow of one account; see the module docstring."""

    @workflow.init
    def __init__(self, data: AccountInput) -> None:
        self._state = data.state or AccountState(
            account_id=data.account_id, key=data.key, created_at=workflow.now()
        )
        self._config: AccountsConfig | None = data.config
        self._inbox: list[MemberUpdate] = list(data.pending)
        self._reload = False
        self._published: list[tuple[str, str | None]] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._last_broadcast: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, data: AccountInput) -> None:
        """Merge member updates and window expiries until it is time to continue as new."""
        if self._config is None:
            self._config = await self._load_config()
        while not self._should_continue_as_new():
            await self._wait_for_work()
            await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: not self._pending)
        workflow.continue_as_new(
            AccountInput(
                account_id=self._state.account_id,
                key=self._state.key,
                state=self._next_run(),
                config=self._config,
                pending=self._inbox,
            )
        )

    @workflow.signal(name="member_update")
    def member_update(self, update: MemberUpdate) -> None:
        """A member's facts (or its leaving); applied in the next workflow task."""
        self._inbox.append(update)

    @workflow.signal(name="definitions_changed")
    def definitions_changed(self, revision: str) -> None:
        """The accounts definition was deployed: reload it."""
        self._reload = True

    @workflow.query(name="state")
    def state(self) -> AccountState:
        """The account's live state."""
        return self._state

    @workflow.query(name="facts")
    def facts(self) -> AccountFacts:
        """What members see of the account now."""
        return account_facts(self._state, self._pinned, workflow.now())

    async def _wait_for_work(self) -> None:
        wake_at = next_wakeup(self._state, self._pinned, workflow.now())
        timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
        with suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(self._inbox) or self._reload, timeout=timeout
            )

    async def _step(self) -> None:
        if self._reload:
            self._reload = False
            self._config = await self._load_config()
        config, now = self._pinned, workflow.now()
        inbox, self._inbox = self._inbox, []
        changed = apply_updates(self._state, inbox)
        facts = account_facts(self._state, config, now)
        start = play_step(self._state, facts, config, now)
        lean = workflow.patched(LEAN_BROADCAST_PATCH)
        told = broadcast_step(self._state, facts, config, now, lean)
        await self._record(facts, changed, now, bool(inbox) or told or start is not None)
        self._publish_search_attributes(facts)
        if start is not None:
            self._in_background(self._alert(start.alert))
        if told and lean:
            self._last_broadcast = self._in_background(
                self._broadcast_after(self._last_broadcast, facts)
            )
        elif told:
            self._in_background(self._broadcast(facts))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Alerts and broadcasts run beside the loop: members' updates keep being merged while
        500 signals or a Slack call complete (all finish before a continue-as-new)."""
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _broadcast_after(
        self, previous: asyncio.Task[None] | None, facts: AccountFacts
    ) -> None:
        """A broadcast starts once the previous one was delivered: two in flight could reach a
        member in the wrong order and leave it with the older facts (seen with 500 members
        on a busy machine, whose 500 signals took longer than ``broadcast_seconds``)."""
        if previous is not None:
            await previous
        await self._broadcast(facts)

    async def _record(
        self, facts: AccountFacts, changed: set[str], now: datetime, anything: bool
    ) -> None:
        """One store call with what changed (members that changed or left)."""
        if not anything:
            return
        members = self._state.members
        left = sorted(m for m in changed if m not in members)
        await workflow.execute_local_activity_method(
            AccountActivities.record_account,
            AccountChanges(
                facts=facts,
                key=self._state.key,
                plays=self._state.plays,
                changed={m: members[m] for m in sorted(changed) if m in members},
                left=left,
                at=now,
            ),
            start_to_close_timeout=_STORE_TIMEOUT,
            summary=f"record {len(changed)} member(s), {len(left)} left",
        )

    async def _broadcast(self, facts: AccountFacts) -> None:
        """Every member hears the account's new facts (its lists may change with them).

        The signals go out together, in one workflow task: awaiting each in turn would cost a
        round trip per member."""
        await asyncio.gather(*(self._tell(m, facts) for m in sorted(self._state.members)))

    async def _tell(self, member: str, facts: AccountFacts) -> None:
        handle = workflow.get_external_workflow_handle_for(
            ContactWorkflow.run, contact_workflow_id(member)
        )
        try:
            await handle.signal(ContactWorkflow.account_changed, facts)
        except FailureError as exc:  # a member merged away meanwhile
            workflow.logger.warning("account facts not delivered: %s", exc)

    async def _alert(self, alert: AccountAlert) -> None:
        """The joint alert: Slack, and a CRM task each for the owner and marketing, each
        once (the key names the account and the play)."""
        base = f"account/{self._state.account_id}/play/{alert.play}"
        context = {"account_id": self._state.account_id, "play": alert.play}
        requests = [
            EffectRequest(
                key=f"{base}/slack",
                contact_id=self._state.account_id,
                channel="slack",
                marketing=False,
                summary=alert.title,
                context=context,
                slack=SlackPayload(text=alert.title + "\n" + alert.text),
            ),
            *(
                EffectRequest(
                    key=f"{base}/task/{who}",
                    contact_id=self._state.account_id,
                    channel="crm_task",
                    marketing=False,
                    summary=alert.title,
                    context=context,
                    task=TaskPayload(
                        title=alert.title, description=alert.text, owner=who, kind="account_play"
                    ),
                )
                for who in dict.fromkeys((alert.owner, alert.marketing))
            ),
        ]
        for request in requests:
            try:
                await workflow.execute_activity_method(
                    EffectActivities.send_effect,
                    request,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=_SEND_RETRY,
                    summary=request.summary,
                )
            except ActivityError as exc:
                workflow.logger.warning("account alert failed: %s", exc.cause or exc)

    async def _load_config(self) -> AccountsConfig:
        return await workflow.execute_local_activity_method(
            AccountActivities.load_accounts_config,
            start_to_close_timeout=_STORE_TIMEOUT,
            summary="load accounts definition",
        )

    @property
    def _pinned(self) -> AccountsConfig:
        return self._config or AccountsConfig()

    def _publish_search_attributes(self, facts: AccountFacts) -> None:
        updates = [ACCOUNT_ID.value_set(self._state.account_id)]
        if facts.stage is not None:
            updates.append(LIFECYCLE_STAGE.value_set(facts.stage))
        if facts.demand_state is not None:
            updates.append(DEMAND_STATE.value_set(facts.demand_state))
        if facts.owner is not None:
            updates.append(OWNER.value_set(facts.owner))
        published = [(u.key.name, u.value) for u in updates]
        if published == self._published:
            return
        self._published = published
        workflow.upsert_search_attributes(updates)

    def _next_run(self) -> AccountState:
        self._state.runs += 1
        return self._state

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._pinned.history_limit
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit
