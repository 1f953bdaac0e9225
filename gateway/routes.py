"""The gateway's endpoints: Segment tracking calls, the sales webhook, health and readiness.

Each endpoint takes one validated model and answers one model. Accepting is the same for all:
map to IncomingEvent, ``Store.accept`` (durable, deduplicated, identities resolved) in a worker
thread, wake the relay, answer. A 200 therefore means "in the store and queued for the
contact's workflow"; delivery happens behind it, whether Temporal is up or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPBasic
from pydantic import BaseModel
from temporalio.service import RPCError

from gateway.http import BatchRoute, ErrorResponse, GatewayError, TrackingRoute
from gateway.relay import Relay
from gateway.sales import (
    SALES_EVENTS,
    SIGNATURE_HEADER,
    SalesWebhook,
    WebhookResponse,
    WebhookRoute,
    to_incoming_sales,
)
from gateway.segment import (
    AliasCall,
    AnyCall,
    BatchRequest,
    GroupCall,
    IdentifyCall,
    PageCall,
    ScreenCall,
    TrackCall,
    TrackingResponse,
    to_incoming,
)
from gateway.urgent import HandRaiserEvents
from models.ingest import AcceptResult, IncomingEvent
from revops.errors import StoreUnavailable
from store.repo import Store

__all__ = ["HealthResponse", "ReadinessResponse", "routers"]

_basic = HTTPBasic(
    auto_error=False, description="The write key as user name, an empty password (Segment's)."
)
_signature = APIKeyHeader(
    name=SIGNATURE_HEADER,
    auto_error=False,
    description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '{t}.{body}' with a webhook secret>",
)
_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 415, 503)
}

tracking = APIRouter(
    prefix="/v1",
    tags=["tracking"],
    route_class=TrackingRoute,
    dependencies=[Security(_basic)],
    responses=_REFUSALS,
)
batches = APIRouter(
    prefix="/v1",
    tags=["tracking"],
    route_class=BatchRoute,
    dependencies=[Security(_basic)],
    responses=_REFUSALS,
)
webhooks = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    route_class=WebhookRoute,
    dependencies=[Security(_signature)],
    responses={**_REFUSALS, 422: {"model": ErrorResponse}},
)
health = APIRouter(tags=["health"])


def _now() -> datetime:
    return datetime.now(UTC)


async def _accept(
    request: Request, build: Callable[[datetime], list[IncomingEvent]]
) -> AcceptResult:
    """Build the events and store them in a worker thread, then wake the relay (and have it
    deliver hand-raisers' contacts at once, beside its running pass)."""
    store: Store = request.app.state.store
    hand_raisers: HandRaiserEvents = request.app.state.hand_raisers

    def work() -> AcceptResult:
        return store.accept(build(_now()), urgent=hand_raisers.names())

    result = await run_in_threadpool(work)
    relay: Relay | None = request.app.state.relay
    if relay is not None and result.contact_ids:
        relay.expedite(result.urgent_contact_ids)
        relay.notify()
    request.state.events = result.accepted
    return result


async def _track_one(request: Request, call: AnyCall) -> TrackingResponse:
    result = await _accept(request, lambda now: [to_incoming(call, now)])
    return TrackingResponse(accepted=result.accepted, duplicates=result.duplicates)


@tracking.post("/track", summary="Record a behaviour (Segment track)")
async def track(call: TrackCall, request: Request) -> TrackingResponse:
    """A named behaviour; counted by the contact's workflow under ``event``."""
    return await _track_one(request, call)


@tracking.post("/identify", summary="Say who the user is (Segment identify)")
async def identify(call: IdentifyCall, request: Request) -> TrackingResponse:
    """Traits update the profile; an ``anonymousId`` links the visitor's earlier events."""
    return await _track_one(request, call)


@tracking.post("/page", summary="Record a page view (Segment page)")
async def page(call: PageCall, request: Request) -> TrackingResponse:
    """Counted as "<name> Page Viewed" ("Page Viewed" without a name); path/url kept."""
    return await _track_one(request, call)


@tracking.post("/screen", summary="Record a screen view (Segment screen)")
async def screen(call: ScreenCall, request: Request) -> TrackingResponse:
    """Counted as "<name> Screen Viewed"."""
    return await _track_one(request, call)


@tracking.post("/group", summary="Link the user to an account (Segment group)")
async def group(call: GroupCall, request: Request) -> TrackingResponse:
    """``groupId`` becomes the contact's account; group traits its company facts."""
    return await _track_one(request, call)


@tracking.post("/alias", summary="Merge two ids (Segment alias)")
async def alias(call: AliasCall, request: Request) -> TrackingResponse:
    """``previousId`` and ``userId`` become one contact (the userId's)."""
    return await _track_one(request, call)


@batches.post("/batch", summary="Several calls at once (Segment batch)")
@batches.post("/import", summary="Several calls at once (Segment import)")
async def batch(body: BatchRequest, request: Request) -> TrackingResponse:
    """All calls are accepted, or none (a bad one is named by its index)."""

    def build(now: datetime) -> list[IncomingEvent]:
        return [
            to_incoming(call, now, batch_context=body.context, index=index)
            for index, call in enumerate(body.batch)
        ]

    result = await _accept(request, build)
    return TrackingResponse(accepted=result.accepted, duplicates=result.duplicates)


@webhooks.post("/sales", summary="Sales activity from a CRM or sales tool")
async def sales(hook: SalesWebhook, request: Request) -> WebhookResponse:
    """Signed sales activity; becomes a "sales" event on the contact's workflow."""
    user_id = hook.contact.user_id
    if user_id is None and hook.contact.contact_id is not None:
        store: Store = request.app.state.store
        user_id = await run_in_threadpool(store.user_id_of, hook.contact.contact_id)
    if user_id is None:
        raise GatewayError(
            422, "unknown_contact", "contact.contact_id: no such contact", field="contact"
        )
    known = user_id
    result = await _accept(request, lambda now: [to_incoming_sales(hook, known, now)])
    return WebhookResponse(accepted=result.accepted == 1, event=SALES_EVENTS[hook.type])


class HealthResponse(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    """Whether this gateway can accept (store) and deliver (Temporal) right now."""

    ready: bool
    store: Literal["ok", "unreachable"]
    temporal: Literal["ok", "unreachable", "not configured"]
    relay: Literal["active", "standby", "not configured"]
    outbox_pending: int | None = None


@health.get("/healthz", summary="The process is up")
async def healthz() -> HealthResponse:
    """Always ok while the process serves requests."""
    return HealthResponse()


async def _store_state(store: Store) -> tuple[bool, int | None]:
    try:
        await run_in_threadpool(store.ping)
        return True, await run_in_threadpool(store.pending_count)
    except StoreUnavailable:
        return False, None


async def _temporal_state(relay: Relay | None) -> Literal["ok", "unreachable", "not configured"]:
    if relay is None:
        return "not configured"
    try:
        service = relay.client.service_client
        ok = await asyncio.wait_for(service.check_health(timeout=timedelta(seconds=2)), 3)
    except (RPCError, RuntimeError, TimeoutError):
        return "unreachable"
    return "ok" if ok else "unreachable"


@health.get("/readyz", summary="Store and Temporal are reachable")
async def readyz(request: Request, response: Response) -> ReadinessResponse:
    """503 unless the store answers and Temporal is reachable."""
    relay: Relay | None = request.app.state.relay
    store_ok, pending = await _store_state(request.app.state.store)
    temporal = await _temporal_state(relay)
    ready = store_ok and temporal == "ok"
    if not ready:
        response.status_code = 503
    return ReadinessResponse(
        ready=ready,
        store="ok" if store_ok else "unreachable",
        temporal=temporal,
        relay="not configured" if relay is None else ("active" if relay.active else "standby"),
        outbox_pending=pending,
    )


routers = (tracking, batches, webhooks, health)
