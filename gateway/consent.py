"""Double opt-in: the link in the double-opt-in journey's email confirms the address.

``GET /v1/consent/confirm?token=...`` shows a page whose button posts to the same URL; only
the ``POST`` confirms (link scanners and mail previews follow links, a person presses the
button). The token names the opaque contact id, signed for this purpose
(``revops.ids.sign_payload``), so it names no person and cannot be forged.

Confirming goes through the normal accept path, stored once whatever the clicks: an identify
setting ``email_opt_in: true`` (source "double-opt-in": the consent history keeps it; the
contact leaves the "Double Opt-In Pending" list, so marketing email flows) and an
"Email Opt-In Confirmed" event (the journey's goal). docs/privacy.md.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from activities.effects import CONFIRM_PURPOSE
from gateway.http import GatewayError
from gateway.relay import Relay
from gateway.unsubscribe import html_page
from models.ingest import IncomingEvent
from revops.ids import short_hash, verify_payload
from revops.settings import Settings
from store.repo import Store

__all__ = ["CONFIRMED_EVENT", "router"]

CONFIRMED_EVENT = "Email Opt-In Confirmed"
SOURCE = "double-opt-in"

router = APIRouter(prefix="/v1/consent", tags=["consent"])

Token = Annotated[str, Query(min_length=3, max_length=300, description="From the email's link.")]


def _contact_of(request: Request, token: str) -> str:
    settings: Settings = request.app.state.settings
    payload = verify_payload(token, settings.id_secret.get_secret_value(), CONFIRM_PURPOSE)
    contact_id = payload.get("c") if payload else None
    if not isinstance(contact_id, str):
        raise GatewayError(
            400, "invalid_token", "this confirmation link is not valid", field="token"
        )
    return contact_id


def _confirm(store: Store, contact_id: str) -> bool:
    """Store the confirmation once; False when the contact is unknown (erased, merged away)."""
    user_id = store.user_id_of(contact_id)
    if user_id is None:
        return False
    now = datetime.now(UTC)
    context = {"library": {"name": SOURCE}}
    key = short_hash(contact_id, SOURCE)
    store.accept(
        [
            IncomingEvent(
                message_id=f"doi-{key}",
                type="identify",
                name="Identify",
                user_id=user_id,
                traits={"email_opt_in": True},
                context=context,
                timestamp=now,
                received_at=now,
            ),
            IncomingEvent(
                message_id=f"doi-confirmed-{key}",
                type="track",
                name=CONFIRMED_EVENT,
                user_id=user_id,
                properties={"source": SOURCE},
                context=context,
                timestamp=now,
                received_at=now,
            ),
        ]
    )
    return True


@router.post("/confirm", summary="Confirm an email address (double opt-in)")
async def confirm(request: Request, token: Token) -> HTMLResponse:
    """The contact the signed token names confirms its address."""
    contact_id = _contact_of(request, token)
    if not await run_in_threadpool(_confirm, request.app.state.store, contact_id):
        raise GatewayError(404, "unknown_contact", "this confirmation link is no longer valid")
    relay: Relay | None = request.app.state.relay
    if relay is not None:
        relay.notify()
    return html_page("Thank you", "<p>Your email address is confirmed.</p>")


@router.get("/confirm", summary="Double opt-in confirmation page", response_class=HTMLResponse)
async def confirm_page(request: Request, token: Token) -> HTMLResponse:
    """A page with one button; following the link alone confirms nothing."""
    _contact_of(request, token)
    action = html.escape(f"/v1/consent/confirm?token={token}", quote=True)
    form = (
        f'<form method="post" action="{action}">'
        "<p>Do you want our emails at this address?</p>"
        '<button type="submit">Yes, confirm</button></form>'
    )
    return html_page("Confirm your email address", form)
