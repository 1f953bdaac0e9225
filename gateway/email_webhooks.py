"""Email providers' event webhooks: ``POST /v1/webhooks/email/{provider}``.

Each provider's request is verified the way the provider documents, and refused with a 401
(nothing stored) when the check fails or is stale:

- ``ses``: the Amazon SNS message signature (``gateway.sns``); a SubscriptionConfirmation is
  confirmed by visiting its SubscribeURL.
- ``sendgrid``: the Signed Event Webhook, ECDSA over timestamp + body with the verification
  key (checked by the ``sendgrid`` library's EventWebhook), the timestamp within the tolerance.
- ``postmark``: HTTP basic auth credentials in the webhook URL and/or a custom header token,
  the protections Postmark documents (it signs nothing).
- ``mailgun``: HMAC-SHA256 of timestamp + token with the webhook signing key, the timestamp
  within the tolerance, each token used once.

The verified payload becomes ``Feedback`` (delivered, opened, clicked, bounced hard or soft,
complained, unsubscribed), matched to the send by Message-ID (or the id a provider's metadata
header carries) and applied by ``gateway.feedback``. Events of kinds we do not use (processed,
deferred, accepted ...) and events of sends we do not know are acknowledged and skipped, so
the provider does not retry them. docs/email.md says how to point each provider here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sendgrid.helpers.eventwebhook import EventWebhook

from gateway.feedback import Feedback, FeedbackResult, apply_feedback
from gateway.http import GatewayError, parse_json, read_body
from gateway.relay import Relay
from gateway.sns import SnsError, SnsVerifier
from revops.settings import Settings
from store.engagement import EngagementKind
from store.repo import Store

__all__ = ["EmailWebhookResponse", "Provider", "router"]

Provider = Literal["ses", "sendgrid", "postmark", "mailgun"]

router = APIRouter(prefix="/v1/webhooks/email", tags=["email provider webhooks"])

MAX_BYTES = 2 * 1024 * 1024
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
POSTMARK_TOKEN = "X-Webhook-Token"  # noqa: S105 - a header name


class EmailWebhookResponse(BaseModel):
    """What the gateway did with a delivery of provider events."""

    received: int = 0
    matched: int = 0
    unknown: int = 0
    duplicates: int = 0
    events: int = 0
    confirmed: bool = False


def _refuse(message: str) -> GatewayError:
    return GatewayError(401, "invalid_signature", message)


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "invalid_payload", message)


def _moment(value: Any) -> datetime:
    """A provider's time: unix seconds (int, float or text) or ISO 8601."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _bad(f"{value[:40]!r} is not a time") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise _bad("an event has no time")


def _fresh(stamp: str, tolerance: int) -> None:
    try:
        seconds = float(stamp)
    except ValueError as exc:
        raise _refuse("the signed timestamp is not a number") from exc
    if abs(time.time() - seconds) > tolerance:
        raise _refuse("the signed timestamp is outside the tolerance (stale or replayed)")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ---- Amazon SES (through SNS) --------------------------------------------------------------------

_SES_KINDS: dict[str, EngagementKind] = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "Complaint": "complained",
    "Open": "opened",
    "Click": "clicked",
}


def ses_feedback(notification: dict[str, Any], sns_message_id: str) -> list[Feedback]:
    """An SES notification (or event publishing record) as feedback."""
    kind_name = notification.get("notificationType") or notification.get("eventType")
    kind = _SES_KINDS.get(str(kind_name))
    if kind is None:
        return []
    mail = _mapping(notification.get("mail"))
    headers = _mapping(mail.get("commonHeaders"))
    detail = _mapping(notification.get(str(kind_name).lower()))
    tags = _mapping(mail.get("tags"))
    tagged = tags.get("revops_message_id")
    message_id = _text(headers.get("messageId"))
    if message_id is None and isinstance(tagged, list) and tagged:
        message_id = _text(tagged[0])
    bounce_type: Literal["hard", "soft"] | None = None
    if kind == "bounced":
        bounce_type = "hard" if detail.get("bounceType") == "Permanent" else "soft"
    url = _text(detail.get("link")) if kind == "clicked" else None
    at = detail.get("timestamp") or mail.get("timestamp")
    return [
        Feedback(
            kind=kind,
            source="ses",
            at=_moment(at),
            message_id=message_id,
            provider_message_id=_text(mail.get("messageId")),
            event_id=sns_message_id,
            bounce_type=bounce_type,
            url=url,
        )
    ]


async def _ses(request: Request, body: bytes) -> tuple[list[Feedback], bool]:
    message = parse_json(body)
    verifier: SnsVerifier = _sns(request)
    try:
        await verifier.verify(message, datetime.now(UTC))
    except SnsError as exc:
        raise _refuse(str(exc)) from exc
    if message["Type"] == "SubscriptionConfirmation":
        try:
            await verifier.confirm(message)
        except (SnsError, httpx.HTTPError) as exc:
            raise GatewayError(502, "confirmation_failed", f"could not confirm: {exc}") from exc
        return [], True
    if message["Type"] != "Notification":
        return [], False
    try:
        notification = json.loads(str(message.get("Message", "")))
    except json.JSONDecodeError as exc:
        raise _bad("the SNS Message is not an SES notification (JSON)") from exc
    if not isinstance(notification, dict):
        raise _bad("the SNS Message is not an SES notification (JSON object)")
    return ses_feedback(notification, str(message.get("MessageId", ""))), False


def _sns(request: Request) -> SnsVerifier:
    verifier: SnsVerifier | None = getattr(request.app.state, "sns_verifier", None)
    if verifier is None:
        verifier = SnsVerifier(request.app.state.settings)
        request.app.state.sns_verifier = verifier
    return verifier


# ---- SendGrid ------------------------------------------------------------------------------------

_SENDGRID_KINDS: dict[str, EngagementKind] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}


def sendgrid_feedback(events: list[Any]) -> list[Feedback]:
    """SendGrid's batch of events as feedback."""
    found = []
    for raw in events:
        event = _mapping(raw)
        kind = _SENDGRID_KINDS.get(str(event.get("event")))
        if kind is None:
            continue
        bounce_type: Literal["hard", "soft"] | None = None
        if kind == "bounced":
            bounce_type = "soft" if event.get("type") == "blocked" else "hard"
        found.append(
            Feedback(
                kind=kind,
                source="sendgrid",
                at=_moment(event.get("timestamp")),
                message_id=_text(event.get("smtp-id")) or _text(event.get("revops_message_id")),
                provider_message_id=_text(event.get("sg_message_id")),
                event_id=_text(event.get("sg_event_id")),
                bounce_type=bounce_type,
                url=_text(event.get("url")) if kind == "clicked" else None,
                machine=event.get("sg_machine_open") is True,
            )
        )
    return found


def _sendgrid(request: Request, body: bytes) -> list[Feedback]:
    settings: Settings = request.app.state.settings
    key = settings.sendgrid_webhook_public_key
    if not key:
        raise _refuse("SendGrid webhooks are not configured (REVOPS_SENDGRID_WEBHOOK_PUBLIC_KEY)")
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    stamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    if not signature or not stamp:
        raise _refuse(f"{SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} are required")
    _fresh(stamp, settings.email_webhook_tolerance_seconds)
    try:
        text = body.decode("utf-8")
        verified = EventWebhook(key).verify_signature(text, signature, stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _refuse(f"the SendGrid signature cannot be checked: {exc}") from exc
    if not verified:
        raise _refuse("the SendGrid signature does not match")
    try:
        events = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad("the body is not a JSON array of events") from exc
    if not isinstance(events, list):
        raise _bad("the body is not a JSON array of events")
    return sendgrid_feedback(events)


# ---- Postmark ------------------------------------------------------------------------------------

_POSTMARK_KINDS: dict[str, EngagementKind] = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "SpamComplaint": "complained",
    "Open": "opened",
    "Click": "clicked",
    "SubscriptionChange": "unsubscribed",
}
_POSTMARK_TIMES = ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt")


def postmark_feedback(record: dict[str, Any]) -> list[Feedback]:
    """One Postmark webhook record as feedback."""
    kind = _POSTMARK_KINDS.get(str(record.get("RecordType")))
    if kind is None or (kind == "unsubscribed" and record.get("SuppressSending") is not True):
        return []
    metadata = _mapping(record.get("Metadata"))
    at = next((record[name] for name in _POSTMARK_TIMES if record.get(name)), None)
    bounce_type: Literal["hard", "soft"] | None = None
    if kind == "bounced":
        bounce_type = "hard" if record.get("Type") in ("HardBounce", "BadEmailAddress") else "soft"
    postmark_id = _text(record.get("MessageID"))
    event = record.get("ID") or f"{record.get('RecordType')}:{postmark_id}:{at}"
    return [
        Feedback(
            kind=kind,
            source="postmark",
            at=_moment(at),
            message_id=_text(metadata.get("revops_message_id")),
            provider_message_id=postmark_id,
            event_id=str(event),
            bounce_type=bounce_type,
            url=_text(record.get("OriginalLink")) if kind == "clicked" else None,
        )
    ]


def _postmark(request: Request, body: bytes) -> list[Feedback]:
    settings: Settings = request.app.state.settings
    user, password = settings.postmark_webhook_username, settings.postmark_webhook_password
    token = settings.postmark_webhook_token
    if user is None and token is None:
        raise _refuse("Postmark webhooks are not configured (REVOPS_POSTMARK_WEBHOOK_*)")
    if user is not None and not _basic_matches(request, user, password):
        raise _refuse("the webhook's basic auth credentials are wrong")
    if token is not None and not hmac.compare_digest(
        request.headers.get(POSTMARK_TOKEN, "").encode(), token.get_secret_value().encode()
    ):
        raise _refuse(f"the {POSTMARK_TOKEN} header is wrong")
    return postmark_feedback(parse_json(body))


def _basic_matches(request: Request, user: str, password: Any) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, _, given_password = decoded.partition(":")
    expected = password.get_secret_value() if password is not None else ""
    return hmac.compare_digest(given_user.encode(), user.encode()) & hmac.compare_digest(
        given_password.encode(), expected.encode()
    )


# ---- Mailgun -------------------------------------------------------------------------------------

_MAILGUN_KINDS: dict[str, EngagementKind] = {
    "delivered": "delivered",
    "failed": "bounced",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}


def mailgun_feedback(data: dict[str, Any]) -> list[Feedback]:
    """Mailgun's event-data as feedback."""
    kind = _MAILGUN_KINDS.get(str(data.get("event")))
    if kind is None:
        return []
    message = _mapping(data.get("message"))
    headers = _mapping(message.get("headers"))
    variables = _mapping(data.get("user-variables"))
    bounce_type: Literal["hard", "soft"] | None = None
    if kind == "bounced":
        bounce_type = "hard" if data.get("severity") == "permanent" else "soft"
    message_id = _text(headers.get("message-id")) or _text(variables.get("revops_message_id"))
    return [
        Feedback(
            kind=kind,
            source="mailgun",
            at=_moment(data.get("timestamp")),
            message_id=message_id,
            event_id=_text(data.get("id")),
            bounce_type=bounce_type,
            url=_text(data.get("url")) if kind == "clicked" else None,
        )
    ]


class _SeenTokens:
    """Mailgun tokens used within the tolerance window (a replay reuses one)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def first_use(self, token: str, window: float) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {t: at for t, at in self._seen.items() if now - at < window}
        if token in self._seen and now - self._seen[token] < window:
            return False
        self._seen[token] = now
        return True


def _mailgun(request: Request, body: bytes) -> list[Feedback]:
    settings: Settings = request.app.state.settings
    key = settings.mailgun_webhook_signing_key
    if key is None:
        raise _refuse("Mailgun webhooks are not configured (REVOPS_MAILGUN_WEBHOOK_SIGNING_KEY)")
    payload = parse_json(body)
    signature = _mapping(payload.get("signature"))
    stamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    if not stamp or not token or not given:
        raise _refuse("the signature block (timestamp, token, signature) is required")
    expected = hmac.new(
        key.get_secret_value().encode(), (stamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise _refuse("the Mailgun signature does not match")
    _fresh(stamp, settings.email_webhook_tolerance_seconds)
    seen: _SeenTokens = _state(request, "mailgun_tokens", _SeenTokens)
    if not seen.first_use(token, 2.0 * settings.email_webhook_tolerance_seconds):
        raise _refuse("this Mailgun token was used before (replayed)")
    return mailgun_feedback(_mapping(payload.get("event-data")))


def _state(request: Request, name: str, build: Callable[[], Any]) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        value = build()
        setattr(request.app.state, name, value)
    return value


# ---- the endpoint --------------------------------------------------------------------------------


@router.post(
    "/{provider}",
    summary="An email provider's event webhook (SES via SNS, SendGrid, Postmark, Mailgun)",
    response_model=EmailWebhookResponse,
)
async def email_events(provider: str, request: Request) -> EmailWebhookResponse:
    """Verify the provider's signature, then record its events against our sends."""
    body = await read_body(request, MAX_BYTES)
    confirmed = False
    if provider == "ses":
        items, confirmed = await _ses(request, body)
    elif provider == "sendgrid":
        items = _sendgrid(request, body)
    elif provider == "postmark":
        items = _postmark(request, body)
    elif provider == "mailgun":
        items = _mailgun(request, body)
    else:
        raise GatewayError(404, "unknown_provider", f"no email provider named {provider!r}")
    response = EmailWebhookResponse(received=len(items), confirmed=confirmed)
    if not items:
        return response
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    result: FeedbackResult = await run_in_threadpool(
        apply_feedback, store, items, soft_bounce_limit=settings.soft_bounce_limit
    )
    relay: Relay | None = request.app.state.relay
    if relay is not None and result.events:
        relay.notify()
    response.matched, response.unknown = result.matched, result.unknown
    response.duplicates, response.events = result.duplicates, result.events
    return response
