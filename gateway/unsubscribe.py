"""One-click unsubscribe (RFC 8058): the link in every marketing email's List-Unsubscribe header.

``POST /v1/unsubscribe?token=...`` (body ``List-Unsubscribe=One-Click``, sent by mail clients
without the user seeing a page) unsubscribes at once. ``GET`` shows a small confirmation page
whose button makes that same POST: a GET never unsubscribes, because link scanners and mail
previews follow links.

The token is the contact's opaque id signed with the installation's id secret
(``revops.ids.sign_token``), so it names no person and cannot be forged. Unsubscribing goes
through the normal ingest path: an "Unsubscribed" event stored once (the message id is derived
from the contact and the day, so repeated clicks count once) and delivered by the relay to the
contact's workflow, which updates its consent and tells its journeys. The stored consent is
set at once too, so a journey's send-time check refuses the next marketing send even before
the event reaches the workflow.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from gateway.http import GatewayError
from gateway.relay import Relay
from models.ingest import IncomingEvent
from revops.ids import short_hash, verify_token
from revops.settings import Settings
from store.journeys import JourneyLog
from store.repo import Store

__all__ = ["UNSUBSCRIBE_EVENT", "UnsubscribeResponse", "html_page", "router"]

UNSUBSCRIBE_EVENT = "Unsubscribed"

router = APIRouter(prefix="/v1", tags=["consent"])

Token = Annotated[str, Query(min_length=3, max_length=200, description="From the email's link.")]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>{title}</h1>{body}</body></html>
"""


class UnsubscribeResponse(BaseModel):
    """The contact will get no more marketing email."""

    status: Literal["unsubscribed"] = "unsubscribed"


def _contact_of(request: Request, token: str) -> str:
    settings: Settings = request.app.state.settings
    contact_id = verify_token(token, settings.id_secret.get_secret_value())
    if contact_id is None:
        raise GatewayError(
            400, "invalid_token", "this unsubscribe link is not valid", field="token"
        )
    return contact_id


def _record(store: Store, contact_id: str) -> bool:
    """Store the Unsubscribed event once per day and the consent; False for no such contact."""
    user_id = store.user_id_of(contact_id)
    if user_id is None:
        return False
    now = datetime.now(UTC)
    event = IncomingEvent(
        message_id=f"unsubscribe-{short_hash(contact_id, now.date().isoformat())}",
        type="track",
        name=UNSUBSCRIBE_EVENT,
        user_id=user_id,
        properties={"source": "one-click", "channel": "email"},
        timestamp=now,
        received_at=now,
    )
    result = store.accept([event])
    for current in {contact_id, *result.contact_ids}:
        JourneyLog(store).unsubscribe(current, now)
    return True


def html_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page for a person following a link (unsubscribe, double opt-in)."""
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


@router.post(
    "/unsubscribe",
    summary="One-click unsubscribe (RFC 8058)",
    response_model=UnsubscribeResponse,
)
async def unsubscribe(request: Request, token: Token) -> Response:
    """Unsubscribe the contact the signed token names from all marketing email."""
    contact_id = _contact_of(request, token)
    store: Store = request.app.state.store
    if not await run_in_threadpool(_record, store, contact_id):
        raise GatewayError(404, "unknown_contact", "this unsubscribe link is no longer valid")
    relay: Relay | None = request.app.state.relay
    if relay is not None:
        relay.notify()
    if "text/html" in request.headers.get("accept", ""):
        return html_page(
            "You are unsubscribed", "<p>You will get no more marketing email from us.</p>"
        )
    return JSONResponse(UnsubscribeResponse().model_dump())


@router.get("/unsubscribe", summary="Unsubscribe confirmation page", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: Token) -> HTMLResponse:
    """A page with one button; following the link alone changes nothing."""
    _contact_of(request, token)
    action = html.escape(f"/v1/unsubscribe?token={token}", quote=True)
    form = (
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<p>Stop all marketing email from us?</p>"
        '<button type="submit">Unsubscribe</button></form>'
    )
    return html_page("Unsubscribe", form)
