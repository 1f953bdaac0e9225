"""Activities of accounts: the fan-in signal, the accounts definition, the account record.

``tell_account`` is the one way a contact reaches its account: a signal-with-start of the
account's workflow (``account-<opaque id>``), so the first member starts it and nobody looks
anything up. A retried signal is harmless: the account keeps each member's highest ``seq``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from accounts.contract import AccountInput, MemberRecord, MemberUpdate
from audience.accounts import AccountsConfig, account_workflow_id
from audience.facts import AccountFacts
from definitions import ACCOUNTS, Definitions
from store.accounts import AccountBook
from store.repo import Store

__all__ = [
    "ACCOUNT_WORKFLOW",
    "MEMBER_UPDATE_SIGNAL",
    "AccountActivities",
    "AccountChanges",
]

ACCOUNT_WORKFLOW = "AccountWorkflow"
MEMBER_UPDATE_SIGNAL = "member_update"


class AccountChanges(BaseModel):
    """One account step for the store: the facts, changed members, members that left."""

    facts: AccountFacts
    key: str
    plays: int = 0
    changed: dict[str, MemberRecord] = Field(default_factory=dict)
    left: list[str] = Field(default_factory=list)
    at: datetime


class AccountActivities:
    """Store, definitions and client access for contacts' fan-in and the account workflow."""

    def __init__(self, store: Store, definitions: Definitions) -> None:
        self._definitions = definitions
        self._book = AccountBook(store)

    @activity.defn(name="tell_account")
    async def tell_account(self, update: MemberUpdate) -> None:
        """Signal the member's facts to its account, starting the account's workflow if new
        (with the accounts definition it pins, so its first task needs no activity)."""
        client = activity.client()
        config = await asyncio.to_thread(self._definitions.get, ACCOUNTS)
        await client.start_workflow(
            ACCOUNT_WORKFLOW,
            AccountInput(account_id=update.account_id, key=update.key, config=config),
            id=account_workflow_id(update.account_id),
            task_queue=activity.info().task_queue,
            start_signal=MEMBER_UPDATE_SIGNAL,
            start_signal_args=[update],
            static_summary="account",
        )

    @activity.defn(name="signal_account")
    async def signal_account(self, update: MemberUpdate) -> None:
        """Signal the member's facts to its running account (the ``accounts-fanin-member``
        patch: a local activity inside the contact's task costs less than a signal command,
        whose completion wakes the contact for one more workflow task). An account that is
        not running is started, as by ``tell_account``."""
        handle = activity.client().get_workflow_handle(account_workflow_id(update.account_id))
        try:
            await handle.signal(MEMBER_UPDATE_SIGNAL, update)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await self.tell_account(update)

    @activity.defn(name="load_accounts_config")
    def load_accounts_config(self) -> AccountsConfig:
        """The accounts definition the account workflow pins until told of a deploy."""
        return self._definitions.get(ACCOUNTS)

    @activity.defn(name="record_account")
    def record_account(self, changes: AccountChanges) -> None:
        """Keep the account and its changed members for ``revops accounts`` (idempotent)."""
        self._book.record(
            changes.facts, changes.key, changes.plays, changes.changed, changes.left, changes.at
        )
