"""What an event says about a contact's consent: one rule for the workflow and the store.

The contact workflow keeps the consent every send checks; the store keeps a copy on the
contact's row for support and exports. Both apply events through ``update_consent`` so they
cannot disagree about what "Unsubscribed", a ``gdpr_consent`` trait or a "Consent Updated"
event means. Pure: the moment of the change is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "CONSENT_EVENT",
    "CONSENT_KEYS",
    "RESUBSCRIBE_EVENTS",
    "UNSUBSCRIBE_EVENTS",
    "Consent",
    "PurposeConsent",
    "addresses_subscription",
    "says_something",
    "update_consent",
]

UNSUBSCRIBE_EVENTS = frozenset({"Unsubscribed", "Email Unsubscribed"})
RESUBSCRIBE_EVENTS = frozenset({"Resubscribed", "Subscribed"})
CONSENT_EVENT = "Consent Updated"
"""A track event whose properties set consent with the keys below."""
CONSENT_KEYS = frozenset({"unsubscribed", "subscribed", "gdpr_consent", "ccpa_opt_out"})
"""Identify traits (or "Consent Updated" properties) that carry consent, all booleans."""


def _facts(name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]) -> dict[str, Any]:
    return {**traits, **properties} if name == CONSENT_EVENT else dict(traits)


def addresses_subscription(
    name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]
) -> bool:
    """True when the event subscribes or unsubscribes (not only GDPR/CCPA flags)."""
    if name in UNSUBSCRIBE_EVENTS or name in RESUBSCRIBE_EVENTS:
        return True
    facts = _facts(name, properties, traits)
    return isinstance(facts.get("unsubscribed"), bool) or isinstance(facts.get("subscribed"), bool)


def says_something(name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]) -> bool:
    """True when the event may change consent (cheap pre-check)."""
    if name in UNSUBSCRIBE_EVENTS or name in RESUBSCRIBE_EVENTS or name == CONSENT_EVENT:
        return True
    return not CONSENT_KEYS.isdisjoint(traits)


def update_consent(
    consent: Consent,
    name: str,
    properties: Mapping[str, Any],
    traits: Mapping[str, Any],
    at: datetime,
) -> None:
    """Apply one event: unsubscribe/resubscribe events, or the boolean consent keys."""
    facts = _facts(name, properties, traits)
    if name in UNSUBSCRIBE_EVENTS or facts.get("unsubscribed") is True:
        consent.subscribed = False
        consent.unsubscribed_at = consent.unsubscribed_at or at
    elif name in RESUBSCRIBE_EVENTS or facts.get("unsubscribed") is False:
        consent.subscribed = True
        consent.unsubscribed_at = None
    elif facts.get("subscribed") is False:
        consent.subscribed = False
        consent.unsubscribed_at = consent.unsubscribed_at or at
    elif facts.get("subscribed") is True:
        consent.subscribed = True
        consent.unsubscribed_at = None
    if isinstance(facts.get("gdpr_consent"), bool):
        consent.gdpr_consent = facts["gdpr_consent"]
    if isinstance(facts.get("ccpa_opt_out"), bool):
        consent.ccpa_opt_out = facts["ccpa_opt_out"]


class PurposeConsent(BaseModel):
    """One purpose's latest consent: given or refused, when, and where it came from."""

    granted: bool
    at: datetime
    source: str = ""


class Consent(BaseModel):
    """Consent state, enforced before every send."""

    subscribed: bool = True
    unsubscribed_at: datetime | None = None
    gdpr_consent: bool | None = None
    ccpa_opt_out: bool = False
    purposes: dict[str, PurposeConsent] = Field(default_factory=dict)
    """Per channel and purpose (``audience.purposes``): kept by the store at accept time;
    the send path reads it there (SMS needs an explicit opt-in)."""

    @property
    def marketing_allowed(self) -> bool:
        """True when marketing messages may be sent."""
        return (
            self.subscribed
            and self.unsubscribed_at is None
            and self.gdpr_consent is not False
            and not self.ccpa_opt_out
        )
