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
from pydantic import BaseModel, Field, ValidationError
from temporalio.service import RPCError

from gateway.http import (
    BatchRoute,
    ErrorResponse,
    GatewayError,
    TrackingRoute,
    describe_errors,
    storable,
    text_fault,
)
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
    RejectedCall,
    ScreenCall,
    TrackCall,
    TrackingResponse,
    batch_sent_at,
    call_adapter,
    to_incoming,
)
from gateway.urgent import HandRaiserEvents
from models.ingest import AcceptResult, IncomingEvent
from revops.errors import StoreUnavailable
from revops.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REFUSED
from revops.settings import Settings
from store.rejected import RejectedBook, Rejection
from store.repo import Store

__all__ = ["DeliveryResponse", "HealthResponse", "ReadinessResponse", "accept_sales", "routers"]

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
    request: Request,
    build: Callable[[datetime], list[IncomingEvent]],
    refused: Callable[[datetime], list[Rejection]] | None = None,
) -> AcceptResult:
    """Build the events and store them in a worker thread, then wake the relay (and have it
    deliver hand-raisers' contacts at once, beside its running pass). Calls ``refused``
    names go to the dead-letter table in the same thread."""
    store: Store = request.app.state.store
    hand_raisers: HandRaiserEvents = request.app.state.hand_raisers

    def work() -> AcceptResult:
        now = _now()
        events = build(now)
        result = store.accept(events, urgent=hand_raisers.names()) if events else AcceptResult()
        if refused is not None:
            RejectedBook(store).keep(refused(now))
        return result

    result = await run_in_threadpool(work)
    EVENTS_ACCEPTED.inc(result.accepted)
    EVENTS_DUPLICATE.inc(result.duplicates)
    relay: Relay | None = request.app.state.relay
    if relay is not None and result.contact_ids:
        relay.expedite(result.urgent_contact_ids)
        relay.notify()
    request.state.events = result.accepted
    return result


def _future_margin(request: Request) -> timedelta:
    settings: Settings = request.app.state.settings
    return timedelta(seconds=settings.future_timestamp_margin_seconds)


async def _track_one(request: Request, call: AnyCall) -> TrackingResponse:
    margin = _future_margin(request)
    result = await _accept(request, lambda now: [to_incoming(call, now, future_margin=margin)])
    return TrackingResponse(accepted=result.accepted, duplicates=result.duplicates)


@tracking.post("/track", summary="Record a behaviour (Segment track)")
@tracking.post("/t", summary="Record a behaviour (Segment track), browser path")
async def track(call: TrackCall, request: Request) -> TrackingResponse:
    """A named behaviour; counted by the contact's workflow under ``event``."""
    return await _track_one(request, call)


@tracking.post("/identify", summary="Say who the user is (Segment identify)")
@tracking.post("/i", summary="Say who the user is (Segment identify), browser path")
async def identify(call: IdentifyCall, request: Request) -> TrackingResponse:
    """Traits update the profile; an ``anonymousId`` links the visitor's earlier events."""
    return await _track_one(request, call)


@tracking.post("/page", summary="Record a page view (Segment page)")
@tracking.post("/p", summary="Record a page view (Segment page), browser path")
async def page(call: PageCall, request: Request) -> TrackingResponse:
    """Counted as "<name> Page Viewed" ("Page Viewed" without a name); path/url kept."""
    return await _track_one(request, call)


@tracking.post("/screen", summary="Record a screen view (Segment screen)")
@tracking.post("/s", summary="Record a screen view (Segment screen), browser path")
async def screen(call: ScreenCall, request: Request) -> TrackingResponse:
    """Counted as "<name> Screen Viewed"."""
    return await _track_one(request, call)


@tracking.post("/group", summary="Link the user to an account (Segment group)")
@tracking.post("/g", summary="Link the user to an account (Segment group), browser path")
async def group(call: GroupCall, request: Request) -> TrackingResponse:
    """``groupId`` becomes the contact's account; group traits its company facts."""
    return await _track_one(request, call)


@tracking.post("/alias", summary="Merge two ids (Segment alias)")
@tracking.post("/a", summary="Merge two ids (Segment alias), browser path")
async def alias(call: AliasCall, request: Request) -> TrackingResponse:
    """``previousId`` and ``userId`` become one contact (the userId's)."""
    return await _track_one(request, call)


@batches.post("/batch", summary="Several calls at once (Segment batch)")
@batches.post("/import", summary="Several calls at once (Segment import)")
@batches.post("/b", summary="Several calls at once (browser and mobile path)")
async def batch(body: BatchRequest, request: Request) -> TrackingResponse:
    """Each valid call is stored; each invalid one is listed by index and reason in the
    answer and kept in the dead-letter table, and costs the others nothing (200)."""
    calls, problems = _validated(body.batch)
    sent_at = batch_sent_at(body.sent_at)
    margin = _future_margin(request)

    def build(now: datetime) -> list[IncomingEvent]:
        return [
            to_incoming(
                call,
                now,
                batch_context=body.context,
                index=index,
                sent_at=sent_at,
                future_margin=margin,
            )
            for index, call in calls
        ]

    def refused(now: datetime) -> list[Rejection]:
        return [
            Rejection(
                index=p.index,
                code=p.code,
                field=p.field,
                reason=p.message,
                call=storable(body.batch[p.index]),
                received_at=now,
                path=request.url.path,
            )
            for p in problems
        ]

    result = await _accept(request, build, refused if problems else None)
    request.state.rejected = len(problems) or None
    if problems:
        EVENTS_REFUSED.labels("invalid_call").inc(len(problems))
    return TrackingResponse(
        accepted=result.accepted, duplicates=result.duplicates, rejected=problems
    )


def _validated(items: list[Any]) -> tuple[list[tuple[int, AnyCall]], list[RejectedCall]]:
    """The batch's valid calls (with their index) and a RejectedCall for each invalid one."""
    calls: list[tuple[int, AnyCall]] = []
    problems: list[RejectedCall] = []
    for index, item in enumerate(items):
        if (fault := text_fault(item)) is not None:
            problems.append(
                RejectedCall(
                    index=index,
                    code="invalid_text",
                    field=f"batch[{index}]",
                    message=f"batch[{index}]: {fault}",
                )
            )
            continue
        try:
            calls.append((index, call_adapter.validate_python(item)))
        except ValidationError as exc:
            field, _, message = describe_errors(exc.errors(), ("batch", index))
            problems.append(
                RejectedCall(index=index, code="invalid_call", field=field, message=message)
            )
    return calls, problems


@webhooks.post("/sales", summary="Sales activity from a CRM or sales tool")
async def sales(hook: SalesWebhook, request: Request) -> WebhookResponse:
    """Signed sales activity; becomes a "sales" event on the contact's workflow."""
    return await accept_sales(request, hook)


async def accept_sales(request: Request, hook: SalesWebhook) -> WebhookResponse:
    """The one accept path of sales activity, whoever brings it (the signed webhook, a Slack
    click, a CRM's webhook): the contact's "sales" event, stored once by its delivery id."""
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
    """Whether this gateway can accept (the store); delivery's health is reported beside it."""

    ready: bool = Field(description="the store answers: a 200 to a tracking call is possible")
    store: Literal["ok", "unreachable"]
    temporal: Literal["ok", "unreachable", "not configured"]
    relay: Literal["active", "standby", "not configured"]
    outbox_pending: int | None = None


class DeliveryResponse(BaseModel):
    """Whether accepted events reach the contact workflows (Temporal and the relay)."""

    delivering: bool = Field(description="Temporal is reachable and this gateway has a relay")
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


def _relay_state(relay: Relay | None) -> Literal["active", "standby", "not configured"]:
    if relay is None:
        return "not configured"
    return "active" if relay.active else "standby"


@health.get("/readyz", summary="The gateway can accept events (the store answers)")
async def readyz(request: Request, response: Response) -> ReadinessResponse:
    """503 only when the store does not answer. Temporal being down does not take the gateway
    out of rotation: it keeps accepting into the outbox and the relay catches up later (its
    state is reported here and at ``/readyz/delivery``)."""
    relay: Relay | None = request.app.state.relay
    store_ok, pending = await _store_state(request.app.state.store)
    if not store_ok:
        response.status_code = 503
    return ReadinessResponse(
        ready=store_ok,
        store="ok" if store_ok else "unreachable",
        temporal=await _temporal_state(relay),
        relay=_relay_state(relay),
        outbox_pending=pending,
    )


@health.get("/readyz/delivery", summary="Accepted events reach the workflows (Temporal, relay)")
async def delivery(request: Request, response: Response) -> DeliveryResponse:
    """503 while Temporal is unreachable (or this process has no relay): for alerts and
    dashboards, not for the load balancer (the gateway still accepts)."""
    relay: Relay | None = request.app.state.relay
    temporal = await _temporal_state(relay)
    _, pending = await _store_state(request.app.state.store)
    delivering = temporal == "ok"
    if not delivering:
        response.status_code = 503
    return DeliveryResponse(
        delivering=delivering, temporal=temporal, relay=_relay_state(relay), outbox_pending=pending
    )


routers = (tracking, batches, webhooks, health)
