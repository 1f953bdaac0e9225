"""Consent per channel and purpose: email marketing, SMS, and being contacted by sales.

GDPR and the US texting rules (TCPA) ask for consent per purpose, not one switch: a person
may read the newsletter, refuse texts and not want a sales call. Each purpose has its own
default, because the law's default differs:

- ``email_marketing``: allowed until refused (the long-standing ``subscribed`` flag, the
  one-click unsubscribe, GDPR and CCPA flags all feed it: ``Consent.marketing_allowed``);
- ``sms``: refused until **explicitly** given (``sms_opt_in: true``); any SMS, transactional
  too, needs it;
- ``sales_contact``: allowed until refused (``sales_contact: false``); shown to the rep on the
  CRM task.

How an event gives or refuses one: a trait (identify) or a "Consent Updated" property named
after the purpose's key (``email_opt_in``, ``sms_opt_in``, ``sales_contact``) with a boolean,
or a "Consent Updated" event with ``purpose`` and ``granted``. Every change is kept with its
time and source (``store``: table ``consent_changes``). This module is the store's: the
contact workflow's consent (``audience.consent.update_consent``) is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from audience.consent import CONSENT_EVENT, Consent, PurposeConsent

__all__ = [
    "DOUBLE_OPT_IN_LIST",
    "PURPOSES",
    "PURPOSE_KEYS",
    "Purpose",
    "allows",
    "mentions_purpose",
    "update_purposes",
]

DOUBLE_OPT_IN_LIST = "Double Opt-In Pending"
"""The list (lists.yaml: it names the countries) whose members get no marketing email until
they confirm their address (the double-opt-in journey asks them)."""

Purpose = Literal["email_marketing", "sms", "sales_contact"]
PURPOSES: tuple[Purpose, ...] = ("email_marketing", "sms", "sales_contact")
PURPOSE_KEYS: dict[str, Purpose] = {
    "email_opt_in": "email_marketing",
    "sms_opt_in": "sms",
    "sales_contact": "sales_contact",
}
"""Trait or property name -> the purpose a boolean under it gives or refuses."""


def _facts(name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]) -> dict[str, Any]:
    return {**traits, **properties} if name == CONSENT_EVENT else dict(traits)


def mentions_purpose(name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]) -> bool:
    """True when the event may give or refuse a purpose (cheap pre-check)."""
    return name == CONSENT_EVENT or not set(PURPOSE_KEYS).isdisjoint(traits)


def _said(
    name: str, properties: Mapping[str, Any], traits: Mapping[str, Any]
) -> dict[Purpose, bool]:
    facts = _facts(name, properties, traits)
    said: dict[Purpose, bool] = {
        PURPOSE_KEYS[k]: v for k, v in facts.items() if k in PURPOSE_KEYS and isinstance(v, bool)
    }
    granted = facts.get("granted")
    for purpose in PURPOSES:
        if name == CONSENT_EVENT and facts.get("purpose") == purpose and isinstance(granted, bool):
            said[purpose] = granted
    return said


def update_purposes(
    consent: Consent,
    name: str,
    properties: Mapping[str, Any],
    traits: Mapping[str, Any],
    at: datetime,
    source: str,
) -> list[Purpose]:
    """Apply what one event says about purposes (email marketing also moves ``subscribed``);
    the purposes it named."""
    said = _said(name, properties, traits)
    for purpose, granted in said.items():
        consent.purposes[purpose] = PurposeConsent(granted=granted, at=at, source=source)
        if purpose == "email_marketing":
            consent.subscribed = granted
            consent.unsubscribed_at = None if granted else (consent.unsubscribed_at or at)
    return list(said)


def allows(consent: Consent, purpose: Purpose) -> bool:
    """May we act for ``purpose`` now? SMS only after an explicit opt-in."""
    if purpose == "email_marketing":
        return consent.marketing_allowed
    entry = consent.purposes.get(purpose)
    if purpose == "sms":
        return entry is not None and entry.granted
    return entry is None or entry.granted
