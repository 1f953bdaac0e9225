"""The relay: delivers outbox items to contact workflows, in order, at least once.

Accepting an event (store) and delivering it (Temporal) are separate so a 200 never depends on
Temporal being up: events wait in the outbox until the relay gets them through. All events
waiting for one contact go in one signal-with-start (far cheaper than one signal each, so the
relay gets faster as the backlog grows); the workflow drops messageIds it has seen, so a
repeated delivery after a crash counts once.

Shards: contacts are split into ``shards`` (``REVOPS_RELAY_SHARDS``) by a hash of their id
(``outbox.bucket % shards``), and each shard has its own lease (``store.lease.LeaseSet``), so
several gateway processes deliver in parallel, each its fair share of the shards. A relay
counts the live relays by their member leases, gives shards above its share back between
drains and takes free ones up to it; a dead relay's leases free themselves (its database
session or file lock ends), so the others take its shards over at their next check.

Order per contact: a contact is in exactly one shard and one relay holds a shard at a time;
each drain reads a prefix of every contact's backlog in id order (``Store.backlog``) and waits
for every delivery before the next drain (a shard changes hands only between drains), and a
contact's chunks go one after another: a failure leaves that chunk and the ones after it
pending, never a gap.
Hand-raisers skip the queue: the gateway names their contacts (``expedite``) and an express
lane delivers each of them at once, beside the running pass, without waiting for its
concurrency slots; one delivery per contact at a time keeps the order. The express lane also
gives the contact's workflow task priority 1, so the step that starts the handoff does not wait
behind the ordinary backlog of the workers' queue either. (``drain_once`` for one contact is
that express delivery.)
While Temporal is unreachable the relay backs off (up to ``backoff_max``) and retries; nothing
is lost because nothing leaves the outbox until Temporal acknowledged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import Priority as ApiPriority
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.client import Client
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contacts.contract import ContactInput
from models.events import ContactMerged, EventBatch
from models.search_attributes import CONTACT_ID
from revops.ids import contact_bucket, contact_workflow_id
from revops.logging import get_logger
from revops.metrics import RELAY_FAILURES, RELAY_LAG, RELAY_SIGNALS
from store.lease import LeaseSet, lease_set
from store.repo import OutboxItem, Store
from workflows.contact import EVENTS_SIGNAL, ContactWorkflow

__all__ = ["URGENT", "Relay", "deliver", "raise_priority"]

log = get_logger(__name__)

_RPC_TIMEOUT = timedelta(seconds=10)
URGENT_KEY = 1
URGENT = Priority(priority_key=URGENT_KEY)
"""Task priority of hand-raisers' contact workflows (1 is the highest; the default is 3)."""
_LEASE_CHECK_SECONDS = 1.0


async def deliver(
    client: Client,
    task_queue: str,
    contact_id: str,
    items: list[OutboxItem],
    config_version: str | None = None,
    priority: Priority = Priority.default,
) -> None:
    """Signal-with-start the contact's workflow with one batch of its events.

    ``priority`` applies when this starts the workflow (a running one keeps its own).

    A contact whose workflow completed (merged into another) is not started again: Temporal
    refuses with WorkflowAlreadyStartedError, which the relay treats as delivered.
    """
    await client.start_workflow(
        ContactWorkflow.run,
        ContactInput(contact_id=contact_id),
        id=contact_workflow_id(contact_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        start_signal=EVENTS_SIGNAL,
        start_signal_args=[
            EventBatch(events=[i.event for i in items], config_version=config_version)
        ],
        search_attributes=TypedSearchAttributes([SearchAttributePair(CONTACT_ID, contact_id)]),
        static_summary="contact (opaque id)",
        priority=priority,
        rpc_timeout=_RPC_TIMEOUT,
    )


async def raise_priority(client: Client, contact_id: str) -> None:
    """Give a hand-raiser's running workflow task priority 1 from now on.

    Its next workflow task (the one applying the demo request and starting the handoff) is
    then dispatched ahead of the ordinary backlog of the contact's queue, instead of behind
    it. Hand-raisers keep it: they are the contacts sales is waiting for. Best effort: a
    contact with no workflow yet gets the priority when the delivery starts it.
    """
    request = UpdateWorkflowExecutionOptionsRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=contact_workflow_id(contact_id)),
        workflow_execution_options=WorkflowExecutionOptions(
            priority=ApiPriority(priority_key=URGENT_KEY)
        ),
        update_mask=FieldMask(paths=["priority"]),
    )
    try:
        await client.workflow_service.update_workflow_execution_options(
            request, timeout=_RPC_TIMEOUT
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            log.warning("raise_priority_failed", contact_id=contact_id, error=str(exc))


async def _notify_merged(client: Client, contact_id: str, merged_into: str) -> None:
    """Tell a merged contact's workflow to stop; no workflow (or a closed one) is fine."""
    handle = client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))
    try:
        await handle.signal(
            ContactWorkflow.merged_into,
            ContactMerged(contact_id=merged_into),
            rpc_timeout=_RPC_TIMEOUT,
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


@dataclass
class _Outcome:
    """What one drain (or one contact's share of it) did."""

    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    error: str = ""

    def add(self, other: _Outcome) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.error = self.error or other.error


def _delivered(chunk: list[OutboxItem], lane: str) -> None:
    """Count one signal and the lag of the longest-waiting event it carried (its first: a
    contact's backlog is in arrival order), one observation per signal to keep it cheap."""
    RELAY_SIGNALS.labels(lane).inc()
    if chunk:
        waited = datetime.now(UTC) - min(item.event.received_at for item in chunk)
        RELAY_LAG.observe(max(waited.total_seconds(), 0.0))


class Relay:
    """Drains the outbox into workflows; run ``run_forever`` in the background."""

    def __init__(
        self,
        store: Store,
        client: Client,
        task_queue: str,
        *,
        batch_size: int = 20000,
        scan: int = 2000,
        signal_size: int = 500,
        concurrency: int = 128,
        idle_sleep: float = 0.05,
        backoff_max: float = 5.0,
        lease_retry: float = 5.0,
        shards: int = 4,
        lease_check: float = _LEASE_CHECK_SECONDS,
    ) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue
        self._batch_size = batch_size
        self._scan = scan
        self._signal_size = signal_size
        self._limit = asyncio.Semaphore(concurrency)
        self._idle_sleep = idle_sleep
        self._backoff_max = backoff_max
        self._lease_retry = lease_retry
        self._wake = asyncio.Event()
        self._shard_count = max(1, shards)
        self._lease_check = lease_check
        self._mine: frozenset[int] = frozenset()
        self._member: str | None = None
        self._handover = asyncio.Lock()
        self._urgent: dict[str, None] = {}
        self._urgent_wake = asyncio.Event()
        self._owners: dict[str, tuple[asyncio.Lock, int]] = {}

    @property
    def client(self) -> Client:
        """The Temporal client deliveries go through."""
        return self._client

    @property
    def active(self) -> bool:
        """True while this relay holds at least one shard and delivers."""
        return bool(self._mine)

    @property
    def shards(self) -> frozenset[int]:
        """The shards this relay holds now."""
        return self._mine

    def owns(self, contact_id: str) -> bool:
        """True when the contact's shard is one this relay holds."""
        return contact_bucket(contact_id) % self._shard_count in self._mine

    def notify(self) -> None:
        """New events were accepted: deliver now instead of at the next poll."""
        self._wake.set()

    def expedite(self, contact_ids: Iterable[str]) -> None:
        """Hand-raisers were accepted: deliver these contacts now, beside the running pass.

        Only the relay holding a contact's shard acts on it; other contacts' hand-raisers go with
        the next pass of their shard's relay (within its poll interval).
        """
        self._urgent.update(dict.fromkeys(contact_ids))
        if self._urgent:
            self._urgent_wake.set()

    # ---- one drain -----------------------------------------------------------------------------

    async def drain_once(self, contact_id: str | None = None) -> int:
        """Deliver what is pending now, whatever its shard; returns the events delivered.

        For the CLI and tests; a running relay (``run_forever``) drains its own shards only.
        """
        outcome = await self._drain(contact_id)
        return len(outcome.delivered)

    async def _drain(
        self, contact_id: str | None = None, shards: frozenset[int] | None = None
    ) -> _Outcome:
        started = time.monotonic()
        if contact_id is None:
            items = await asyncio.to_thread(
                self._store.backlog,
                scan=self._scan,
                limit=self._batch_size,
                shards=shards,
                shard_count=self._shard_count,
            )
        else:
            items = await asyncio.to_thread(
                self._store.pending, limit=self._batch_size, contact_id=contact_id
            )
        by_contact: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_contact[item.contact_id].append(item)
        outcome = _Outcome()
        urgent = contact_id is not None
        for part in await asyncio.gather(
            *(self._deliver_contact(cid, batch, urgent) for cid, batch in by_contact.items())
        ):
            outcome.add(part)
        await asyncio.to_thread(self._settle, outcome)
        if items:
            log.debug(
                "relay_drained",
                events=len(outcome.delivered),
                failed=len(outcome.failed),
                contacts=len(by_contact),
                seconds=round(time.monotonic() - started, 3),
            )
        return outcome

    def _settle(self, outcome: _Outcome) -> None:
        self._store.mark_delivered(outcome.delivered)
        self._store.mark_failed(outcome.failed, outcome.error)

    @contextlib.asynccontextmanager
    async def _owning(self, contact_id: str) -> AsyncIterator[None]:
        """One delivery per contact at a time (the pass and the express lane), so its signals
        go out in outbox order; a lane that read items the other just sent sends them again,
        and the workflow drops the repeated messageIds. Only the lock's acquire awaits, so a
        cancelled delivery always lets go of the contact."""
        lock, users = self._owners.get(contact_id, (asyncio.Lock(), 0))
        self._owners[contact_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._owners[contact_id]
            if users == 1:
                del self._owners[contact_id]
            else:
                self._owners[contact_id] = (lock, users - 1)

    async def _deliver_contact(
        self, contact_id: str, items: list[OutboxItem], urgent: bool = False
    ) -> _Outcome:
        events = [i for i in items if i.merged_into is None]
        chunks = [
            events[i : i + self._signal_size] for i in range(0, len(events), self._signal_size)
        ]
        outcome = _Outcome()
        # An urgent delivery does not queue for the pass's concurrency slots.
        async with self._owning(contact_id), contextlib.nullcontext() if urgent else self._limit:
            for position, chunk in enumerate(chunks):
                error = await self._send(contact_id, chunk, urgent)
                if error:
                    outcome.failed = [i.outbox_id for c in chunks[position:] for i in c]
                    outcome.failed += [i.outbox_id for i in items if i.merged_into]
                    outcome.error = error
                    return outcome
                outcome.delivered += [i.outbox_id for i in chunk]
            for notice in (i for i in items if i.merged_into):
                error = await self._send_notice(contact_id, notice)
                target = outcome.failed if error else outcome.delivered
                target.append(notice.outbox_id)
                outcome.error = outcome.error or error
        return outcome

    async def _send(self, contact_id: str, chunk: list[OutboxItem], urgent: bool = False) -> str:
        """Deliver one chunk; returns the error, or "" when Temporal has it."""
        try:
            if urgent:
                await raise_priority(self._client, contact_id)
            priority = URGENT if urgent else Priority.default
            await deliver(self._client, self._task_queue, contact_id, chunk, priority=priority)
        except WorkflowAlreadyStartedError:
            log.warning("contact_closed_events_dropped", contact_id=contact_id, events=len(chunk))
        except (RPCError, RuntimeError) as exc:
            log.warning("delivery_failed", contact_id=contact_id, error=str(exc))
            RELAY_FAILURES.inc()
            return str(exc) or type(exc).__name__
        _delivered(chunk, "express" if urgent else "pass")
        return ""

    async def _send_notice(self, contact_id: str, notice: OutboxItem) -> str:
        assert notice.merged_into is not None
        try:
            await _notify_merged(self._client, contact_id, notice.merged_into)
        except (RPCError, RuntimeError) as exc:
            log.warning("merge_notice_failed", contact_id=contact_id, error=str(exc))
            return str(exc) or type(exc).__name__
        return ""

    # ---- running ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Relay the shards this process holds; stand by while others hold them all."""
        while True:
            leases = lease_set(self._store.engine)
            try:
                await self._relay(leases)
            except Exception as exc:  # the store is down: try again later
                log.warning("relay_lease_unavailable", error=str(exc))
            finally:
                self._mine, self._member = frozenset(), None
                await asyncio.to_thread(leases.close)
            await asyncio.sleep(self._lease_retry)

    async def _relay(self, leases: LeaseSet) -> None:
        express = asyncio.create_task(self._express())
        try:
            await self._passes(leases)
        finally:
            express.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await express

    async def _express(self) -> None:
        """The express lane: expedited contacts are delivered at once, each on its own."""
        while True:
            await self._urgent_wake.wait()
            self._urgent_wake.clear()
            async with self._handover:  # no shard changes hands while these are in flight
                contacts = [c for c in self._urgent if self.owns(c)]
                self._urgent = {}
                results = await asyncio.gather(
                    *(self._drain(contact_id) for contact_id in contacts), return_exceptions=True
                )
            for result in results:
                if isinstance(result, Exception):  # the pass retries whatever is left
                    log.warning("relay_express_error", error=str(result) or type(result).__name__)

    # ---- shards -----------------------------------------------------------------------------

    async def _rebalance(self, leases: LeaseSet) -> bool:
        """Hold this relay's fair share of the shards; False once the leases are lost."""
        async with self._handover:
            return await asyncio.to_thread(self._rebalance_now, leases)

    def _rebalance_now(self, leases: LeaseSet) -> bool:
        if not leases.alive():
            if self._mine:
                log.warning("relay_lease_lost")
            return False
        members = self._members(leases)
        if self._member is None:
            self._mine = frozenset()
            return True
        fair = -(-self._shard_count // members)
        mine = set(self._mine)
        for shard in sorted(mine, reverse=True)[: max(0, len(mine) - fair)]:
            leases.give_up(_shard_lease(shard))
            mine.discard(shard)
        for shard in range(self._shard_count):
            if len(mine) >= fair:
                break
            if shard not in mine and leases.take(_shard_lease(shard)):
                mine.add(shard)
        if mine != self._mine:
            log.info("relay_shards", shards=sorted(mine), relays=members)
        self._mine = frozenset(mine)
        return True

    def _members(self, leases: LeaseSet) -> int:
        """Live relays, counted by their member leases (one each, at most one per shard)."""
        slots = [_member_lease(i) for i in range(self._shard_count)]
        if self._member is None:
            self._member = next((slot for slot in slots if leases.take(slot)), None)
        others = sum(1 for slot in slots if slot != self._member and not leases.is_free(slot))
        return others + (1 if self._member is not None else 0) or 1

    async def _passes(self, leases: LeaseSet) -> None:
        backoff = 0.0
        checked = -float("inf")
        while True:
            if time.monotonic() - checked > self._lease_check or not self._mine:
                if not await self._rebalance(leases):
                    return
                checked = time.monotonic()
                if not self._mine:
                    await asyncio.sleep(self._lease_retry)
                    continue
            self._wake.clear()
            try:
                outcome = await self._drain(shards=self._mine)
            except Exception as exc:  # keep relaying whatever went wrong (store down, ...)
                log.warning("relay_error", error=str(exc))
                outcome = _Outcome(error=str(exc) or type(exc).__name__)
            if outcome.delivered:
                backoff = 0.0
            elif outcome.failed or outcome.error:
                backoff = min(max(backoff * 2, 0.1), self._backoff_max)
                await asyncio.sleep(backoff)  # not cut short by notify: Temporal is down
            else:
                await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._idle_sleep)


def _shard_lease(shard: int) -> str:
    return f"relay-shard-{shard}"


def _member_lease(slot: int) -> str:
    return f"relay-member-{slot}"
