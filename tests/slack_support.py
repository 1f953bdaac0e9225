"""Slack as it calls the gateway: a block_actions payload from the posted notice, signed."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "slack-signing-test"


def click(
    notice: dict[str, Any], action_id: str, response_url: str, reason: str | None = None
) -> bytes:
    """The form Slack posts when a rep clicks ``action_id`` on the posted ``notice``."""
    actions_block = next(b for b in notice["blocks"] if b["type"] == "actions")
    action: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "block_id": actions_block["block_id"],
        "action_ts": f"{time.time():.6f}",
    }
    if reason is not None:
        action.update(type="static_select", selected_option={"value": reason})
    payload = {
        "type": "block_actions",
        "user": {"id": "U0REP1", "username": "rep"},
        "api_app_id": "A0REVOPS",
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "message": {"type": "message", "text": notice["text"], "blocks": notice["blocks"]},
        "response_url": response_url,
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def slack_signed(
    body: bytes, secret: str = SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    """Headers Slack puts on ``body``: the request timestamp and the v0 signature."""
    stamp = str(int(time.time() if at is None else at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
