"""ContactWorkflow: one long-lived entity workflow per known contact.

It owns the contact's live state (profile facts without personal data, event counts, lifecycle
stage, consent, durable wakeups). Events arrive in batches by signal; a repeated messageId is
ignored, also across continue-as-new (the window of seen ids travels with the state).
Deterministic code only: no I/O, no clocks but ``workflow.now()``, no randomness.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.activities import RecordStagesInput
    from models.contact import ContactConfig, ContactInput, ContactState, Stage
    from models.events import ContactEvent, EventBatch, StageOverride
    from models.search_attributes import CONTACT_ID, LIFECYCLE_STAGE
    from revops.contact_state import (
        Changes,
        apply_events,
        fire_due_wakeups,
        next_wakeup,
        override_stage,
    )

__all__ = ["ContactWorkflow"]

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
        self._wanted_config: str | None = None

    @workflow.run
    async def run(self, data: ContactInput) -> None:
        """Process events and wakeups until it is time to continue as new."""
        if self._config is None:
            self._config = await self._load_config()
        self._publish_search_attributes()
        while not self._should_continue_as_new():
            await self._wait_for_work()
            await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
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

    @workflow.signal(name="override_stage")
    def override_stage(self, change: StageOverride) -> None:
        """An operator's manual stage change (audited, reason required)."""
        self._overrides.append(change)

    @workflow.query(name="state")
    def state(self) -> ContactState:
        """The contact's live state."""
        return self._state

    async def _wait_for_work(self) -> None:
        wake_at = next_wakeup(self._state)
        timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
        with suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(self._inbox or self._overrides), timeout=timeout
            )

    async def _step(self) -> None:
        if self._wanted_config is not None:
            self._config = await self._load_config()
            self._wanted_config = None
        assert self._config is not None
        now = workflow.now()
        inbox, self._inbox = self._inbox, []
        changes = apply_events(self._state, inbox, self._config, now)
        self._apply_overrides(changes, now)
        fire_due_wakeups(self._state, now)
        if changes.stage_changed:
            self._publish_search_attributes()
            await workflow.execute_activity(
                "record_stage_entries",
                RecordStagesInput(contact_id=self._state.contact_id, entries=changes.stage_entries),
                start_to_close_timeout=_STORE_TIMEOUT,
                summary=f"record stage {self._state.stage}",
            )

    def _apply_overrides(self, changes: Changes, now: datetime) -> None:
        for change in self._overrides:
            entry = override_stage(
                self._state, Stage(change.stage), now, change.reason, change.actor
            )
            changes.stage_entries.append(entry)
        self._overrides.clear()

    async def _load_config(self) -> ContactConfig:
        config: ContactConfig = await workflow.execute_activity(
            "load_contact_config",
            start_to_close_timeout=_STORE_TIMEOUT,
            result_type=ContactConfig,
            summary="load definitions",
        )
        return config

    def _publish_search_attributes(self) -> None:
        updates = [CONTACT_ID.value_set(self._state.contact_id)]
        if self._state.stage is not None:
            updates.append(LIFECYCLE_STAGE.value_set(self._state.stage.value))
        workflow.upsert_search_attributes(updates)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._config.history_limit if self._config else ContactConfig().history_limit
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit
