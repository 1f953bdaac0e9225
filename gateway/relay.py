"""The relay: delivers outbox items to contact workflows, in order, at least once.

Accepting an event (store) and delivering it (Temporal) are separate so a 200 never depends on
Temporal being up: events wait in the outbox until the relay gets them through. All events
waiting for one contact go in one signal-with-start (far cheaper than one signal each); the
workflow drops messageIds it has seen, so a repeated delivery after a crash counts once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError

from models.contact import ContactInput
from models.events import EventBatch
from models.search_attributes import CONTACT_ID
from revops.ids import contact_workflow_id
from revops.logging import get_logger
from store.repo import OutboxItem, Store

__all__ = ["Relay", "deliver"]

log = get_logger(__name__)


async def deliver(
    client: Client,
    task_queue: str,
    contact_id: str,
    items: list[OutboxItem],
    config_version: str | None = None,
) -> None:
    """Signal-with-start the contact's workflow with one batch of its events."""
    await client.start_workflow(
        "ContactWorkflow",
        ContactInput(contact_id=contact_id),
        id=contact_workflow_id(contact_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="events",
        start_signal_args=[
            EventBatch(events=[i.event for i in items], config_version=config_version)
        ],
        search_attributes=TypedSearchAttributes([SearchAttributePair(CONTACT_ID, contact_id)]),
        static_summary="contact (opaque id)",
    )


class Relay:
    """Drains the outbox into workflows; run ``run_forever`` in the background."""

    def __init__(
        self,
        store: Store,
        client: Client,
        task_queue: str,
        *,
        batch_size: int = 2000,
        concurrency: int = 32,
        idle_sleep: float = 0.05,
    ) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue
        self._batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self._idle_sleep = idle_sleep
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New events were accepted: deliver now instead of at the next poll."""
        self._wake.set()

    async def drain_once(self, contact_id: str | None = None) -> int:
        """Deliver what is pending now; returns the number of events delivered."""
        items = await asyncio.to_thread(
            self._store.pending, limit=self._batch_size, contact_id=contact_id
        )
        by_contact: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_contact[item.contact_id].append(item)
        results = await asyncio.gather(
            *(self._deliver_contact(cid, batch) for cid, batch in by_contact.items())
        )
        return sum(results)

    async def _deliver_contact(self, contact_id: str, items: list[OutboxItem]) -> int:
        ids = [i.outbox_id for i in items]
        async with self._limit:
            try:
                await deliver(self._client, self._task_queue, contact_id, items)
            except RPCError as exc:
                log.warning("delivery_failed", contact_id=contact_id, error=str(exc))
                await asyncio.to_thread(self._store.mark_failed, ids, str(exc))
                return 0
        await asyncio.to_thread(self._store.mark_delivered, ids)
        return len(items)

    async def run_forever(self, *, backoff_max: float = 5.0) -> None:
        """Deliver continuously; back off while Temporal is unreachable."""
        backoff = self._idle_sleep
        while True:
            try:
                delivered = await self.drain_once()
                backoff = self._idle_sleep
            except Exception as exc:  # keep relaying whatever went wrong
                log.warning("relay_error", error=str(exc))
                delivered = 0
                backoff = min(backoff * 2 or 0.1, backoff_max)
            if delivered == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
