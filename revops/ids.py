"""Opaque identifiers.

Workflow ids, search attributes and log keys must never carry personal data, yet the gateway
has to find a contact's workflow from a user id without a lookup. So the contact id is a keyed
hash of the user id: stable, opaque, and not reversible without the installation's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

__all__ = [
    "CONTACT_BUCKETS",
    "CONTACT_WORKFLOW_PREFIX",
    "contact_bucket",
    "contact_id_for",
    "contact_workflow_id",
    "short_hash",
    "sign_payload",
    "sign_token",
    "verify_payload",
    "verify_token",
]

CONTACT_WORKFLOW_PREFIX = "contact-"


def contact_id_for(user_id: str, secret: str) -> str:
    """Return the opaque contact id for a user id (20 hex characters, keyed by ``secret``)."""
    if not user_id:
        raise ValueError("user id must not be empty")
    digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return "c" + digest[:19]


CONTACT_BUCKETS = 1024
"""Fixed buckets of contacts; the relay's shard of a bucket is ``bucket % shards``, so the
shard count can change without rewriting the outbox."""


def contact_bucket(contact_id: str) -> int:
    """The contact's bucket (0..1023): a stable hash, spread evenly whatever the id's form."""
    digest = hashlib.sha256(contact_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % CONTACT_BUCKETS


def contact_workflow_id(contact_id: str) -> str:
    """Workflow id of a contact's entity workflow."""
    return CONTACT_WORKFLOW_PREFIX + contact_id


def short_hash(*parts: str) -> str:
    """A short stable hash of ``parts``, for idempotency keys and opaque references."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def sign_token(value: str, secret: str) -> str:
    """``value`` with a MAC, for links such as one-click unsubscribe (not forgeable)."""
    mac = hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:24]
    return f"{value}.{mac}"


def verify_token(token: str, secret: str) -> str | None:
    """The value of a token made by ``sign_token``, or None when it was tampered with."""
    value = token.rpartition(".")[0]
    if not value or not token.isascii():  # compare_digest refuses non-ASCII text
        return None
    if not hmac.compare_digest(sign_token(value, secret), token):
        return None
    return value


def sign_payload(payload: dict[str, Any], secret: str, purpose: str) -> str:
    """A URL-safe token carrying ``payload`` (compact JSON) with a MAC keyed by ``purpose``.

    Links such as tracked clicks carry their facts in the token itself, so the server that
    follows them answers from the token alone, without a lookup.
    """
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{body}.{_mac(body, secret, purpose)}"


def verify_payload(token: str, secret: str, purpose: str) -> dict[str, Any] | None:
    """The payload of a token made by ``sign_payload`` for ``purpose``, or None if forged."""
    body, _, mac = token.rpartition(".")
    if not body or not token.isascii():  # compare_digest refuses non-ASCII text
        return None
    if not hmac.compare_digest(_mac(body, secret, purpose), mac):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _mac(body: str, secret: str, purpose: str) -> str:
    key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
