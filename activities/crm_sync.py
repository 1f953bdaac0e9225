"""The CRM pusher: drains the store's CRM queue into the CRM, in batches, under its rate limit.

Contacts queue their pushes through the one send path (``send_effect``, channel ``crm``); this
loop, beside the worker, takes the due rows (at most the definition's ``batch_size``, HubSpot's
batch limit of 100), adds what only the store holds (email, traits, account, the CRM id),
upserts them with the connector, stores the CRM ids, then pushes the handoff tasks of contacts
that have one. One process pushes at a time (the ``crm`` lease), so one client-side rate limit
keeps every call under the vendor's window; a 429 pauses it for the vendor's ``Retry-After``.
A batch the CRM refuses stays queued with its error and a growing back-off
(``revops crm status`` shows it); nothing here can block a contact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import SecretStr

from crm.connector import Connector, CrmError
from crm.definition import CrmDefinition
from crm.hubspot import HubSpotConnector
from crm.ratelimit import RateLimit
from crm.records import PushOutcome
from crm.salesforce import SalesforceConnector
from definitions import CRM, Definitions
from revops.logging import get_logger
from revops.settings import Settings
from store.crm import CrmBook
from store.lease import RelayLease, try_relay_lease
from store.repo import Store

__all__ = ["CrmSync", "SyncRound", "build_connector", "crm_configured"]

log = get_logger(__name__)


def crm_configured(settings: Settings) -> bool:
    """Whether the settings hold a CRM's credentials (the pusher runs only then)."""
    return settings.hubspot_access_token is not None or bool(
        settings.salesforce_instance_url
        and (settings.salesforce_access_token or settings.salesforce_username)
    )


def build_connector(
    definition: CrmDefinition, settings: Settings, limit: RateLimit
) -> Connector | None:
    """The connector of the definition's provider with the settings' credentials."""
    if definition.provider == "hubspot" and settings.hubspot_access_token is not None:
        return HubSpotConnector(
            settings.hubspot_access_token.get_secret_value(),
            definition,
            limit,
            host=settings.hubspot_api_url,
        )
    if definition.provider == "salesforce" and settings.salesforce_instance_url:
        return SalesforceConnector(
            definition,
            limit,
            instance_url=settings.salesforce_instance_url,
            session_id=_secret(settings.salesforce_access_token),
            username=settings.salesforce_username,
            password=_secret(settings.salesforce_password),
            security_token=_secret(settings.salesforce_security_token),
            session=_session(settings),
        )
    return None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _session(settings: Settings) -> requests.Session:
    session = requests.Session()
    if settings.salesforce_ca_file is not None:
        session.verify = str(settings.salesforce_ca_file)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would win over the session's CA file
    return session


@dataclass(frozen=True)
class SyncRound:
    """What one drain did."""

    pushed: int = 0
    failed: int = 0
    tasks: int = 0
    error: str | None = None


class CrmSync:
    """The pusher of one store; ``drain_once`` is one round (blocking: call it in a thread)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        definitions: Definitions | None = None,
        *,
        limit: RateLimit | None = None,
    ) -> None:
        self.store = store
        self._settings = settings
        self._definitions = definitions or Definitions.of(store, settings)
        self.book = CrmBook(store)
        self.limit = limit or RateLimit(settings.crm_rate_limit, settings.crm_rate_window_seconds)
        self._connector: tuple[CrmDefinition, Connector] | None = None
        self._throttled_seen = 0

    @property
    def definition(self) -> CrmDefinition:
        """The active CRM definition."""
        return self._definitions.get(CRM)

    def connector(self) -> Connector | None:
        """The connector for the active definition and settings (None: no CRM configured)."""
        definition = self.definition
        if self._connector is None or self._connector[0] is not definition:
            connector = build_connector(definition, self._settings, self.limit)
            if connector is None:
                return None
            self._connector = (definition, connector)
        return self._connector[1]

    def drain_once(self) -> SyncRound:
        """Push one batch of due contacts, then waiting tasks."""
        connector = self.connector()
        if connector is None:
            return SyncRound()
        taken = self.book.due(self.definition.batch_size)
        outcome = PushOutcome()
        if taken:
            records = self.book.records([snapshot for snapshot, _ in taken])
            try:
                outcome = connector.push(records)
            except CrmError as exc:
                self.book.failed([s.contact_id for s, _ in taken], str(exc))
                self._record(error=str(exc))
                log.warning("crm_push_failed", contacts=len(taken), error=str(exc)[:200])
                return SyncRound(failed=len(taken), error=str(exc))
            self.book.pushed(self.definition.provider, taken, outcome.crm_ids)
        tasks = self._push_tasks(connector)
        self._record(pushed=len(taken))
        return SyncRound(pushed=len(taken), tasks=tasks)

    def _push_tasks(self, connector: Connector) -> int:
        waiting = self.book.waiting_tasks(self.definition.batch_size)
        if not waiting:
            return 0
        crm_ids = self.book.links({t.contact_id for t in waiting})
        try:
            done = connector.push_tasks(waiting, crm_ids)
        except CrmError as exc:
            self._record(error=str(exc))
            return 0
        self.book.tasks_pushed(done)
        return len(done)

    def _record(self, *, pushed: int = 0, error: str | None = None) -> None:
        throttled = self.limit.throttled - self._throttled_seen
        self._throttled_seen = self.limit.throttled
        connector = self._connector[1] if self._connector else None
        headroom: dict[str, Any] = {
            "window_seconds": self.limit.window,
            "limit": self.limit.limit,
            "remaining": self.limit.headroom(),
            **(connector.usage() if connector else {}),
        }
        self.book.record_sync(
            self.definition.provider,
            pushed=pushed,
            throttled=throttled,
            headroom=headroom,
            error=error,
        )

    def drain_all(self, progress: Callable[[int], None] | None = None) -> int:
        """Push until nothing is due (``revops crm resync``); returns contacts pushed."""
        total = 0
        while True:
            done = self.drain_once()
            total += done.pushed
            if progress is not None and done.pushed:
                progress(done.pushed)
            if not done.pushed or done.error:
                return total

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Hold the ``crm`` lease and drain every ``crm_poll_seconds`` until ``stop``."""
        stop = stop or asyncio.Event()
        lease: RelayLease | None = None
        try:
            while not stop.is_set():
                if lease is None or not lease.held():
                    lease = await asyncio.to_thread(try_relay_lease, self.store.engine, "crm")
                if lease is not None:
                    done = await self._round()
                    if done.pushed:
                        continue  # more may be due: no pause between full batches
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.crm_poll_seconds)
        finally:
            if lease is not None:
                lease.release()

    async def _round(self) -> SyncRound:
        try:
            return await asyncio.to_thread(self.drain_once)
        except Exception as exc:  # the store or the CRM down: keep the loop, say why
            log.warning("crm_sync_round_failed", error=type(exc).__name__)
            return SyncRound(error=type(exc).__name__)
