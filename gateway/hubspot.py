"""HubSpot's webhooks: ``POST /v1/webhooks/hubspot``, deal and owner changes as sales events.

The request must carry HubSpot's v3 signature over the URL HubSpot called
(``REVOPS_PUBLIC_URL`` + the path: behind a proxy the gateway sees another host) with the app's
client secret (``REVOPS_HUBSPOT_CLIENT_SECRET``); a forged, unsigned or stale one (more than
five minutes) is answered 401 and stores nothing. The body is HubSpot's array of events; each
becomes the sales webhook's own delivery (``crm.hubspot_webhooks``) and takes the one accept
path, once per HubSpot ``eventId`` and contact. A deal event is read back from HubSpot for its
stage, amount, lost reason and contacts; contacts revops never pushed are skipped. When HubSpot
cannot be read the answer is 503, and HubSpot retries the delivery later.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, TypeAdapter, ValidationError

from crm.connector import CrmError
from crm.definition import CrmDefinition
from crm.hubspot import HubSpotConnector
from crm.hubspot_webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Deal,
    HubSpotEvent,
    sales_events,
    verify_v3,
)
from crm.ratelimit import RateLimit
from definitions import CRM, Definitions
from gateway.http import GatewayError, read_body
from gateway.routes import accept_sales
from gateway.sales import SalesWebhook
from revops.settings import Settings
from store.crm import CrmBook
from store.repo import Store

__all__ = ["HubSpotWebhookResponse", "router"]

router = APIRouter(prefix="/v1/webhooks", tags=["crm webhooks"])

MAX_BYTES = 1024 * 1024
_EVENTS = TypeAdapter(list[HubSpotEvent])


class HubSpotWebhookResponse(BaseModel):
    """What the gateway did with a delivery."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0


class _Pull:
    """The gateway's reader of HubSpot (deals), its own small share of the rate limit."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.book = CrmBook(store)
        self.settings = settings
        self.definitions = Definitions.of(store, settings)
        share = max(settings.crm_rate_limit // 10, 1)  # the pusher keeps most of the budget
        self.limit = RateLimit(share, settings.crm_rate_window_seconds)
        self._connector: tuple[CrmDefinition, HubSpotConnector] | None = None

    def connector(self, definition: CrmDefinition) -> HubSpotConnector:
        token = self.settings.hubspot_access_token
        if token is None:
            raise CrmError("REVOPS_HUBSPOT_ACCESS_TOKEN is not set: deals cannot be read")
        if self._connector is None or self._connector[0] is not definition:
            connector = HubSpotConnector(
                token.get_secret_value(),
                definition,
                self.limit,
                host=self.settings.hubspot_api_url,
                max_attempts=3,
            )
            self._connector = (definition, connector)
        return self._connector[1]

    def hooks(self, event: HubSpotEvent) -> list[dict[str, Any]]:
        """The sales deliveries of one event (reads its deal first when it names one)."""
        definition = self.definitions.get(CRM)
        deal: Deal | None = None
        if event.needs_deal:
            deal = self.connector(definition).deal(str(event.object_id))
            targets = deal.contact_ids
        else:
            targets = [str(event.object_id)]
        contacts = {t: c for t in targets if (c := self.book.contact_of(t)) is not None}
        return sales_events(event, contacts, definition, deal)


def _pull(request: Request) -> _Pull:
    pull: _Pull | None = getattr(request.app.state, "hubspot_pull", None)
    if pull is None:
        pull = _Pull(request.app.state.store, request.app.state.settings)
        request.app.state.hubspot_pull = pull
    return pull


def _verify(request: Request, settings: Settings, body: bytes) -> None:
    secret = settings.hubspot_client_secret
    if secret is None:
        raise GatewayError(401, "bad_signature", "REVOPS_HUBSPOT_CLIENT_SECRET is not set")
    uri = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        uri += "?" + request.url.query
    why = verify_v3(
        secret.get_secret_value(),
        "POST",
        uri,
        body.decode("utf-8", errors="replace"),
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(TIMESTAMP_HEADER),
        time.time(),
    )
    if why is not None:
        raise GatewayError(401, "bad_signature", why)


def _events(body: bytes) -> list[HubSpotEvent]:
    try:
        return _EVENTS.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where or 'body'}: {first.get('msg', 'invalid')}"
        raise GatewayError(400, "invalid_payload", message, field=where or None) from exc


@router.post("/hubspot", summary="HubSpot webhook events (deal and owner changes)")
async def hubspot(request: Request) -> HubSpotWebhookResponse:
    """Signed HubSpot events; each becomes a sales event on the contacts concerned."""
    settings: Settings = request.app.state.settings
    body = await read_body(request, MAX_BYTES)
    _verify(request, settings, body)
    events = _events(body)
    pull = _pull(request)
    answer = HubSpotWebhookResponse(received=len(events))
    for event in events:
        try:
            bodies = await run_in_threadpool(pull.hooks, event)
        except CrmError as exc:
            raise GatewayError(
                503, "crm_unavailable", f"HubSpot could not be read, retry later: {exc}"
            ) from exc
        if not bodies:
            answer.skipped += 1
        for hook_body in bodies:
            try:
                hook = SalesWebhook.model_validate(hook_body)
            except ValidationError:  # e.g. an amount out of range: acknowledged, not stored
                answer.skipped += 1
                continue
            result = await accept_sales(request, hook)
            if result.accepted:
                answer.accepted += 1
            else:
                answer.duplicates += 1
    return answer
