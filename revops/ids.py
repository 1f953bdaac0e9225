"""Opaque identifiers.

Workflow ids, search attributes and log keys must never carry personal data, yet the gateway
has to find a contact's workflow from a user id without a lookup. So the contact id is a keyed
hash of the user id: stable, opaque, and not reversible without the installation's secret.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "CONTACT_WORKFLOW_PREFIX",
    "contact_id_for",
    "contact_workflow_id",
    "short_hash",
    "sign_token",
    "verify_token",
]

CONTACT_WORKFLOW_PREFIX = "contact-"


def contact_id_for(user_id: str, secret: str) -> str:
    """Return the opaque contact id for a user id (20 hex characters, keyed by ``secret``)."""
    if not user_id:
        raise ValueError("user id must not be empty")
    digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return "c" + digest[:19]


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
    if not value or not hmac.compare_digest(sign_token(value, secret), token):
        return None
    return value
