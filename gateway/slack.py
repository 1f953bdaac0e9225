"""Slack interactivity: ``POST /v1/slack/interactions``, a rep's Accept or Reject click.

Slack posts a form with one ``payload`` field (JSON) and signs it: ``X-Slack-Signature`` is
``v0=`` HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{body}`` with the app's signing secret
(``REVOPS_SLACK_SIGNING_SECRET``). slack-sdk's ``SignatureVerifier`` checks it, refusing a
timestamp more than five minutes off so a captured click cannot be replayed; a forged, stale or
unsigned request is answered 401 and stores nothing.

A click on the owner's notice (``handoff.slack``) becomes the sales webhook's own
``lead_accepted`` / ``lead_rejected`` (with the chosen reason) and takes the one accept path
(``gateway.routes.accept_sales``): the contact's workflow hears it, the handoff ends its SLA
clock, a rejection recycles. Its delivery id names the handoff and the decision, so a double
click is stored once. The message is then replaced, through the ``response_url`` Slack gave,
by the notice and who decided what (slack-sdk's ``WebhookClient``); a failed replacement is
logged, the decision stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from gateway.http import GatewayError, read_body
from gateway.routes import accept_sales
from gateway.sales import SalesWebhook
from handoff.slack import ACCEPT_ACTION, REJECT_ACTION, LeadRef, decided_blocks
from revops.logging import get_logger
from revops.settings import Settings

__all__ = ["MAX_BYTES", "SlackClick", "parse_click", "router", "verify_slack"]

log = get_logger(__name__)

router = APIRouter(prefix="/v1/slack", tags=["slack"])

MAX_BYTES = 64 * 1024
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
_UPDATE_TIMEOUT = 3.0


def verify_slack(
    settings: Settings, body: bytes, timestamp: str | None, signature: str | None
) -> None:
    """GatewayError(401) unless Slack signed ``body`` within five minutes."""
    secret = settings.slack_signing_secret
    if secret is None:
        raise GatewayError(401, "bad_signature", "REVOPS_SLACK_SIGNING_SECRET is not set")
    if not timestamp or not timestamp.isdigit() or not signature:
        missing = f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
        raise GatewayError(401, "bad_signature", missing)
    verifier = SignatureVerifier(secret.get_secret_value())
    if not verifier.is_valid(body, timestamp, signature):
        raise GatewayError(
            401, "bad_signature", "Slack signature does not match or is older than 5 minutes"
        )


@dataclass(frozen=True)
class SlackClick:
    """One decision a rep clicked: which lead, accept or reject (with reason), who, where."""

    ref: LeadRef
    decision: Literal["accepted", "rejected"]
    reason: str | None
    user: str
    response_url: str | None
    text: str
    at: datetime

    def sales_webhook(self) -> SalesWebhook:
        """The sales webhook delivery this click is: one per handoff and decision."""
        accepted = self.decision == "accepted"
        body = {
            "id": f"slack-{self.ref.handoff_id}-{'accept' if accepted else 'reject'}",
            "type": "lead_accepted" if accepted else "lead_rejected",
            "occurred_at": self.at.isoformat(),
            "contact": {"contact_id": self.ref.contact_id},
            "reason": self.reason,
            "rep_id": self.ref.owner,
            "properties": {"via": "slack", "slack_user": self.user},
        }
        return SalesWebhook.model_validate(body)


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "invalid_payload", message)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise _bad("body must be a form with a JSON 'payload' field") from exc
    if not isinstance(payload, dict):
        raise _bad("payload must be a JSON object")
    return payload


def _message_text(payload: dict[str, Any]) -> str:
    message = payload.get("message")
    if not isinstance(message, dict):
        return ""
    for block in message.get("blocks") or []:
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            return str(text["text"])
    return str(message.get("text") or "")


def _moment(action: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(float(action.get("action_ts", "")), UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def parse_click(payload: dict[str, Any]) -> SlackClick | None:
    """The decision in a ``block_actions`` payload (None: not one of our controls)."""
    if payload.get("type") != "block_actions":
        return None
    actions = [
        a
        for a in payload.get("actions") or []
        if isinstance(a, dict) and a.get("action_id") in (ACCEPT_ACTION, REJECT_ACTION)
    ]
    if not actions:
        return None
    action = actions[0]
    try:
        ref = LeadRef.of_block(str(action.get("block_id", "")))
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    reason = None
    if action["action_id"] == REJECT_ACTION:
        option = action.get("selected_option")
        reason = option.get("value") if isinstance(option, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise _bad("a rejection needs the selected reason")
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    assert isinstance(user, dict)
    response_url = payload.get("response_url")
    return SlackClick(
        ref=ref,
        decision="accepted" if action["action_id"] == ACCEPT_ACTION else "rejected",
        reason=reason,
        user=str(user.get("id") or "unknown"),
        response_url=response_url if isinstance(response_url, str) and response_url else None,
        text=_message_text(payload),
        at=_moment(action),
    )


def _replace_message(click: SlackClick) -> None:
    """Replace the notice: its text, and the decision instead of the controls."""
    if click.response_url is None:
        return
    by = f"<@{click.user}>"
    blocks = decided_blocks(click.text, click.decision, by, click.reason)
    client = WebhookClient(click.response_url, timeout=int(_UPDATE_TIMEOUT))
    try:
        answer = client.send(text=click.text, blocks=blocks, replace_original=True)
    except OSError as exc:
        log.warning("slack_update_failed", error=type(exc).__name__)
        return
    if answer.status_code >= 300:
        log.warning("slack_update_failed", status=answer.status_code)


@router.post("/interactions", summary="A rep's Accept or Reject click in Slack")
async def interactions(request: Request) -> Response:
    """Slack-signed interactivity; a decision becomes ``lead_accepted`` / ``lead_rejected``."""
    settings: Settings = request.app.state.settings
    body = await read_body(request, MAX_BYTES)
    headers = request.headers
    verify_slack(settings, body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER))
    click = parse_click(_payload(body))
    if click is None:
        return Response(status_code=200)
    try:
        hook = click.sales_webhook()
    except ValidationError as exc:
        raise _bad(f"not a valid decision: {exc.errors()[0]['msg']}") from exc
    await accept_sales(request, hook)
    await run_in_threadpool(_replace_message, click)
    return Response(status_code=200)
