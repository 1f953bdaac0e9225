"""Telling every running contact workflow that definitions changed, with progress.

Signals are sent concurrently but bounded, so re-evaluating a large base neither floods the
server nor blocks event delivery (each workflow re-evaluates in its own task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from audience.accounts import account_workflow_id
from revops.ids import contact_workflow_id
from store.accounts import AccountRow
from store.repo import Store
from store.schema import ContactRow
from workflows.account import AccountWorkflow
from workflows.contact import ContactWorkflow

__all__ = ["broadcast_accounts_changed", "broadcast_definitions_changed", "live_contact_ids"]


def live_contact_ids(store: Store) -> list[str]:
    """Every contact that has not been merged into another."""
    with store._sessions() as session:
        return list(
            session.scalars(
                select(ContactRow.contact_id)
                .where(ContactRow.merged_into.is_(None))
                .order_by(ContactRow.contact_id)
            )
        )


async def broadcast_definitions_changed(
    client: Client,
    contact_ids: list[str],
    revision: str,
    *,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 32,
) -> int:
    """Signal ``definitions_changed`` to each contact; returns how many were reached."""
    limit = asyncio.Semaphore(concurrency)
    reached = 0

    async def one(contact_id: str) -> None:
        nonlocal reached
        async with limit:
            handle = client.get_workflow_handle_for(
                ContactWorkflow.run, contact_workflow_id(contact_id)
            )
            try:
                await handle.signal(ContactWorkflow.definitions_changed, revision)
                reached += 1
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        if progress is not None:
            progress(1)

    await asyncio.gather(*(one(c) for c in contact_ids))
    return reached


async def broadcast_accounts_changed(client: Client, store: Store, revision: str) -> int:
    """Tell every recorded account workflow to reload the accounts definition."""
    with store._sessions() as session:
        accounts = list(session.scalars(select(AccountRow.account_id)))
    reached = 0
    for account_id in accounts:
        handle = client.get_workflow_handle_for(
            AccountWorkflow.run, account_workflow_id(account_id)
        )
        try:
            await handle.signal(AccountWorkflow.definitions_changed, revision)
            reached += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    return reached
