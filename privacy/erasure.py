"""Erasing a person everywhere: the store's rows and the contact's Temporal executions.

The order keeps the person from coming back while the erasure runs:

1. Record the erasure (who, when, why, the subject's hash), refuse their ids at accept and
   drop what waits in the outbox: one transaction, so from here no event reaches them.
2. Delete every execution of the contact, its journeys and its handoffs from Temporal
   (``DeleteWorkflowExecution`` terminates a running one first). The contact goes first, so
   it starts no child while its children go; ids come from its live state and from the
   visibility store (``ContactId``), every run of each (continue-as-new chains).
3. Delete the rows (``store.erase``), then look again until a pass finds nothing: an activity
   that was running when its workflow went may have written a row, a child started just
   before its parent went may run, a delivery read before step 1 may have started a
   workflow. Ids are also matched by prefix (``journey-<contact>-``, ``handoff-<contact>-``)
   so a child that has not yet set its ``ContactId`` is found too.

Running it again is harmless: the subject is found by its hash and answered "already erased".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contacts.contract import ContactState
from revops.errors import ConfigError, NotFound
from revops.ids import contact_workflow_id, short_hash
from revops.logging import get_logger
from store.erase import Privacy, Subject
from store.privacy import ErasureTicket
from store.repo import Store
from workflows.contact import ContactWorkflow

__all__ = ["MAX_REASON", "erase_person"]

log = get_logger(__name__)

MAX_REASON = 500
_SWEEPS = 5
"""Passes after the first: until one finds nothing (a child started while its parent went)."""
_SETTLE = 0.3
"""Seconds before each pass: visibility lists a just-started child a moment later."""


async def erase_person(
    store: Store, client: Client, user_id: str, *, reason: str, erased_by: str
) -> ErasureTicket:
    """Erase ``user_id``'s person; idempotent. Raises NotFound for a user id never known,
    ConfigError for a missing or too long reason."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise ConfigError(f"a reason of 1 to {MAX_REASON} characters is required")
    privacy = Privacy(store)
    # Store calls run in a thread: the gateway's event loop keeps serving meanwhile.
    subject = await asyncio.to_thread(privacy.find, user_id)
    if subject is None:
        ticket = await asyncio.to_thread(privacy.erasure, user_id)
        if ticket is None:
            raise NotFound(f"no contact with user id {user_id!r} (and none erased)")
        return ticket
    ticket = await asyncio.to_thread(privacy.begin, subject, erased_by=erased_by, reason=reason)
    done: set[tuple[str, str]] = set()
    first = [contact_workflow_id(c) for c in subject.contact_ids]
    first += await _known_children(client, subject)
    deleted = await _delete_executions(client, subject, first, done)
    rows = await asyncio.to_thread(privacy.erase, subject)
    for _ in range(_SWEEPS):
        await asyncio.sleep(_SETTLE)
        swept = await _delete_executions(client, subject, [], done)
        for table, count in (await asyncio.to_thread(privacy.erase, subject)).items():
            rows[table] = rows.get(table, 0) + count
        deleted += swept
        if not swept:
            break
    record = await asyncio.to_thread(privacy.complete, subject, rows, deleted)
    log.info(
        "contact_erased",
        subject=ticket.subject_hash[:16],
        contacts=len(subject.contact_ids),
        workflows=deleted,
        rows=sum(rows.values()),
        already=ticket.already,
    )
    result = record or ticket
    result.already = ticket.already
    return result


async def _known_children(client: Client, subject: Subject) -> list[str]:
    """Workflow ids the contacts' live state names: journeys (running) and every handoff."""
    ids: list[str] = []
    for contact_id in subject.contact_ids:
        workflow_id = contact_workflow_id(contact_id)
        handle = client.get_workflow_handle_for(ContactWorkflow.run, workflow_id)
        try:
            state: ContactState = await handle.query(ContactWorkflow.state)
        except RPCError:
            continue
        ids += [e.workflow_id for e in state.enrollments if e.workflow_id]
        ids += [f"handoff-{contact_id}-{n}" for n in range(1, state.handoff_counter + 1)]
        if state.handoff is not None:
            ids.append(state.handoff.workflow_id)
    return ids


async def _listed(client: Client, contact_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Every execution (each run) the visibility store has for the contacts."""
    found: list[tuple[str, str]] = []
    for contact_id in contact_ids:
        query = (
            f"ContactId = '{contact_id}' OR WorkflowId = '{contact_workflow_id(contact_id)}'"
            f" OR WorkflowId STARTS_WITH 'journey-{contact_id}-'"
            f" OR WorkflowId STARTS_WITH 'handoff-{contact_id}-'"
        )
        found += [(w.id, w.run_id) async for w in client.list_workflows(query)]
    return found


async def _delete_executions(
    client: Client, subject: Subject, first: list[str], done: set[tuple[str, str]]
) -> int:
    """Delete the contacts' executions not deleted before (contacts first); how many went.

    ``first`` names workflows by id alone (their current run); the visibility store adds
    every run it lists. ``done`` remembers what was deleted, across passes.
    """
    listed = await _listed(client, subject.contact_ids)
    ordered = [(workflow_id, "") for workflow_id in first]
    ordered += sorted(listed, key=lambda e: not e[0].startswith("contact-"))
    deleted = 0
    for execution in dict.fromkeys(ordered):
        if execution in done:
            continue
        done.add(execution)
        deleted += await _delete(client, *execution)
    return deleted


async def _delete(client: Client, workflow_id: str, run_id: str) -> int:
    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )
    try:
        await client.workflow_service.delete_workflow_execution(request)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return 0
        log.warning("erase_delete_failed", workflow=short_hash(workflow_id), error=str(exc))
        raise
    return 1
