"""Salesforce Opportunity changes as sales events: a SOQL reader on ``SystemModstamp``.

Every ``salesforce_poll_seconds`` the gateway (one at a time: the ``crm-poll`` lease) asks for
the Opportunities modified since its cursor (``SystemModstamp >=`` the last one seen, oldest
first, 200 a call) and stores what each means for its contact through the accept path the
sales webhook takes (``to_incoming_sales``, ``Store.accept``, the relay): opportunity created,
stage changed, closed won (amount) or closed lost (reason). The owners of revops' Leads are
read the same way (their own cursor): a Lead sales gave to another rep is ``owner_changed``.
The delivery id names the record and the transition (``salesforce-<id>-won``), so
re-reading a row (the cursor is inclusive, a restart reads again) stores nothing twice. The
cursor then moves to the newest ``SystemModstamp`` read.

Why polling rather than Change Data Capture: CDC needs a streaming client (CometD or the gRPC
Pub/Sub API) held open by one process, keeps events for only 72 hours (a longer outage loses
changes for good) and counts against a separate event allocation per org edition. A poll on
``SystemModstamp`` (indexed, moved by every change including system ones) is one REST call a
minute (1,440 of the daily API limit), catches up after any outage from its cursor, and needs
nothing but the REST API the push already uses. The price is a minute of latency, which a deal
outcome can afford.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.crm_sync import build_connector
from crm.connector import CrmError
from crm.definition import CrmDefinition
from crm.ratelimit import RateLimit
from crm.salesforce import LeadOwner, Opportunity, SalesforceConnector
from definitions import CRM, Definitions
from gateway.relay import Relay
from gateway.sales import SalesWebhook, to_incoming_sales
from models.ingest import IncomingEvent
from revops.logging import get_logger
from revops.settings import Settings
from store.crm import CrmBook
from store.lease import RelayLease, try_relay_lease
from store.repo import Store
from store.sla import SlaBook

__all__ = ["SalesforcePoller", "opportunity_events", "owner_event"]

log = get_logger(__name__)

FIRST_LOOKBACK = timedelta(days=1)
"""Where a poller without a cursor starts reading."""


def opportunity_events(opportunity: Opportunity) -> list[dict[str, Any]]:
    """The sales webhook deliveries one Opportunity row stands for (ids per transition)."""
    if not opportunity.contact_id:
        return []
    base: dict[str, Any] = {
        "occurred_at": opportunity.modified_at.isoformat(),
        "contact": {"contact_id": opportunity.contact_id},
        "opportunity_id": f"salesforce-{opportunity.id}",
        "properties": {"via": "salesforce"},
    }
    if opportunity.amount is not None:
        base["amount"] = opportunity.amount
    key = f"salesforce-{opportunity.id}"
    found = [{**base, "id": f"{key}-created", "type": "opportunity_created"}]
    if opportunity.is_won:
        found.append({**base, "id": f"{key}-won", "type": "closed_won"})
    elif opportunity.is_closed:
        reason = opportunity.lost_reason or "Unspecified"
        found.append({**base, "id": f"{key}-lost", "type": "closed_lost", "reason": reason})
    else:
        stage = opportunity.stage[:80] or "unknown"
        found.append(
            {**base, "id": f"{key}-stage-{stage}"[:100], "type": "stage_changed", "stage": stage}
        )
    return found


def owner_event(
    lead: LeadOwner, definition: CrmDefinition, current_owner: str | None
) -> dict[str, Any] | None:
    """``owner_changed`` when sales gave the Lead to someone else than the lead's owner in
    revops (the owner revops itself wrote comes back too, and is no change)."""
    reps = {crm_owner: rep for rep, crm_owner in definition.owners.items()}
    rep = reps.get(lead.owner_id, lead.owner_id)
    if rep == current_owner:
        return None
    return {
        "id": f"salesforce-lead-{lead.id}-owner-{lead.owner_id}"[:100],
        "type": "owner_changed",
        "occurred_at": lead.modified_at.isoformat(),
        "contact": {"contact_id": lead.contact_id},
        "rep_id": rep[:255],
        "properties": {"via": "salesforce"},
    }


class SalesforcePoller:
    """Reads Opportunity changes into the store; ``poll_once`` blocks (call it in a thread)."""

    def __init__(self, store: Store, settings: Settings, relay: Relay | None = None) -> None:
        self._store = store
        self._settings = settings
        self._relay = relay
        self._definitions = Definitions.of(store, settings)
        self.book = CrmBook(store)
        self._sla = SlaBook(store)
        self._limit = RateLimit(max(settings.crm_rate_limit // 10, 1), 1.0)

    def _connector(self) -> SalesforceConnector | None:
        definition = self._definitions.get(CRM)
        if definition.provider != "salesforce":
            return None
        connector = build_connector(definition, self._settings, self._limit)
        return connector if isinstance(connector, SalesforceConnector) else None

    def poll_once(self, now: datetime | None = None) -> tuple[int, list[str]]:
        """Read one page of changes; returns (events stored, contact ids to deliver to)."""
        connector = self._connector()
        if connector is None:
            return 0, []
        cursor = self.book.cursor("salesforce") or (now or datetime.now(UTC)) - FIRST_LOOKBACK
        try:
            changed = connector.opportunities_since(cursor)
        except CrmError as exc:
            self.book.record_sync("salesforce", error=str(exc), headroom=connector.usage())
            return 0, []
        owners_cursor = self.book.cursor("salesforce-leads") or cursor
        try:
            owners = connector.owners_since(owners_cursor)
        except CrmError as exc:
            self.book.record_sync("salesforce", error=str(exc), headroom=connector.usage())
            owners = []
        bodies = [body for o in changed for body in opportunity_events(o)]
        definition = self._definitions.get(CRM)
        for lead in owners:
            found = owner_event(lead, definition, self._sla_owner(lead.contact_id))
            if found is not None:
                bodies.append(found)
        events = self._incoming(bodies)
        result = self._store.accept(events) if events else None
        if changed:
            self.book.set_cursor("salesforce", max(o.modified_at for o in changed))
        if owners:
            self.book.set_cursor("salesforce-leads", max(o.modified_at for o in owners))
        self.book.record_sync("salesforce", headroom=connector.usage())
        return (result.accepted if result else 0), (result.contact_ids if result else [])

    def _incoming(self, bodies: list[dict[str, Any]]) -> list[IncomingEvent]:
        received = datetime.now(UTC)
        events: list[IncomingEvent] = []
        for body in bodies:
            user_id = self._store.user_id_of(body["contact"]["contact_id"])
            if user_id is not None:
                hook = SalesWebhook.model_validate(body)
                events.append(to_incoming_sales(hook, user_id, received))
        return events

    def _sla_owner(self, contact_id: str) -> str | None:
        """The owner of the contact's latest handoff, as revops recorded it."""
        return self._sla.owner_of(contact_id)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Hold the ``crm-poll`` lease and poll until ``stop``."""
        lease: RelayLease | None = None
        try:
            while not stop.is_set():
                if lease is None or not lease.held():
                    lease = await asyncio.to_thread(try_relay_lease, self._store.engine, "crm-poll")
                if lease is not None:
                    await self._round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.salesforce_poll_seconds)
        finally:
            if lease is not None:
                lease.release()

    async def _round(self) -> None:
        try:
            stored, contact_ids = await asyncio.to_thread(self.poll_once)
        except Exception as exc:  # the store or Salesforce down: keep polling, say why
            log.warning("salesforce_poll_failed", error=type(exc).__name__)
            return
        if stored and self._relay is not None and contact_ids:
            self._relay.notify()
