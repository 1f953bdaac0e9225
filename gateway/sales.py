"""Inbound sales-tool webhooks: the signed payload, its verification, and the event it becomes.

Sales activity (emails, calls, meetings, opportunities, closed won/lost, a rep accepting or
rejecting a lead) reaches a contact's workflow as an event of type "sales" whose name matches
``config/lifecycle.yaml`` ("Lead Accepted", "Closed Lost", ...). Opportunity activity may name
its opportunity (``opportunity_id``: one opportunity with several contacts is one id on each
contact's events) and carry its ``amount``; attribution and the revenue reports read them.
Senders sign ``"{timestamp}.{body}"`` with HMAC-SHA256; several secrets may be valid at once so
a secret can be rotated without downtime, and a signature older than five minutes is refused so
a captured request cannot be replayed later. The delivery ``id`` is the event's messageId, so a
delivery repeated within the window is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gateway.http import GatewayError, JsonRoute
from gateway.segment import Id, IsoTimestamp
from models.ingest import IncomingEvent

__all__ = [
    "MAX_AMOUNT",
    "SALES_EVENTS",
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "SalesContact",
    "SalesWebhook",
    "SignatureError",
    "WebhookResponse",
    "WebhookRoute",
    "sign",
    "to_incoming_sales",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Revops-Signature"
MAX_AMOUNT = 1e15
"""The largest opportunity amount taken (amounts are money: reports sum them)."""
TOLERANCE_SECONDS = 300

SalesActivity = Literal[
    "email_sent",
    "call_logged",
    "meeting_booked",
    "opportunity_created",
    "stage_changed",
    "closed_won",
    "closed_lost",
    "lead_accepted",
    "lead_rejected",
    "lead_qualified",
    "owner_changed",
]

SALES_EVENTS: dict[str, str] = {
    "email_sent": "Sales Email Sent",
    "call_logged": "Sales Call Logged",
    "meeting_booked": "Meeting Booked",
    "opportunity_created": "Opportunity Created",
    "stage_changed": "Opportunity Stage Changed",
    "closed_won": "Closed Won",
    "closed_lost": "Closed Lost",
    "lead_accepted": "Lead Accepted",
    "lead_rejected": "Lead Rejected",
    "lead_qualified": "Lead Qualified",
    "owner_changed": "Owner Changed",
}
"""Webhook activity type -> the behaviour name contact workflows (and lifecycle.yaml) use."""

_NEEDS_REASON = frozenset({"closed_lost", "lead_rejected"})
Text = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
Notes = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]


class SignatureError(Exception):
    """The webhook's signature is missing, wrong or stale (answered with 401)."""


class SalesContact(BaseModel):
    """Who the activity is about: the user id the product sends, or the opaque contact id."""

    user_id: Id | None = None
    contact_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None

    @model_validator(mode="after")
    def _one_id(self) -> SalesContact:
        if self.user_id is None and self.contact_id is None:
            raise ValueError("user_id or contact_id is required")
        return self


class SalesWebhook(BaseModel):
    """One sales activity as a CRM or sales-engagement tool posts it."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="unique delivery id; a repeated id is stored once"
    )
    type: SalesActivity
    occurred_at: IsoTimestamp
    contact: SalesContact
    reason: Text | None = Field(default=None, description="required for closed_lost, lead_rejected")
    stage: Text | None = Field(default=None, description="required for stage_changed")
    rep_id: Id | None = None
    opportunity_id: Id | None = Field(
        default=None, description="the opportunity (several contacts may share one)"
    )
    amount: Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)] | None = Field(
        default=None, description="the opportunity's amount now (latest one counts)"
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    notes: Notes | None = Field(
        default=None,
        description="the SDR's qualification notes (lead_qualified): the AE's notice shows them",
    )
    properties: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _required_details(self) -> SalesWebhook:
        if self.amount is not None and 0 < self.amount < 0.01:
            raise ValueError("amount must be 0 or at least 0.01")
        if self.type in _NEEDS_REASON and self.reason is None:
            raise ValueError(f"reason is required for {self.type}")
        if self.type == "stage_changed" and self.stage is None:
            raise ValueError("stage is required for stage_changed")
        return self


class WebhookResponse(BaseModel):
    """What the gateway did with a webhook delivery."""

    accepted: bool = Field(description="stored now (false: this delivery id was stored before)")
    event: str = Field(description="the behaviour name the contact's workflow receives")


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header value a sender puts on ``body`` (``t=<unix>,v1=<hex>``)."""
    return f"t={timestamp},v1={_digest(secret, str(timestamp), body)}"


def _parse(header: str) -> tuple[str, list[str]]:
    timestamp, signatures = "", []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not timestamp.isdigit() or not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<hex>'")
    return timestamp, signatures


def verify_signature(header: str | None, body: bytes, secrets: Sequence[str], now: float) -> None:
    """Raise SignatureError unless one of ``secrets`` signed ``body`` within the tolerance."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse(header)
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureError("signature timestamp is outside the 5-minute tolerance")
    expected = [_digest(secret, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise SignatureError("signature does not match")


def to_incoming_sales(hook: SalesWebhook, user_id: str, received_at: datetime) -> IncomingEvent:
    """The "sales" event for the contact's workflow; the delivery id is its messageId."""
    details = {
        "reason": hook.reason,
        "stage": hook.stage,
        "rep_id": hook.rep_id,
        "opportunity_id": hook.opportunity_id,
        "amount": hook.amount,
        "currency": hook.currency,
        "notes": hook.notes,
    }
    properties = {
        **(hook.properties or {}),
        **{k: v for k, v in details.items() if v is not None},
        "activity": hook.type,
    }
    return IncomingEvent(
        message_id=f"sales-{hook.id}",
        type="sales",
        name=SALES_EVENTS[hook.type],
        user_id=user_id,
        properties=properties,
        timestamp=hook.occurred_at,
        received_at=received_at,
    )


class WebhookRoute(JsonRoute):
    """A sales webhook: the body must carry a fresh signature by one of the webhook secrets."""

    def check_body(self, request: Request, body: bytes) -> None:
        secrets = [s.get_secret_value() for s in request.app.state.settings.webhook_secrets]
        try:
            verify_signature(request.headers.get(SIGNATURE_HEADER), body, secrets, time.time())
        except SignatureError as exc:
            raise GatewayError(401, "bad_signature", str(exc)) from exc
