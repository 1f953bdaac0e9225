"""HubSpot's webhooks as the product's sales events: verification and mapping, pure.

HubSpot posts a JSON array of events to the app's target URL, signed with the v3 signature:
``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client secret, method + URI + body +
timestamp)) with ``X-HubSpot-Request-Timestamp`` in milliseconds. hubspot-api-client's
``Signature`` computes it; a timestamp more than five minutes away (either way) or a wrong
signature is refused.

What each subscription becomes (one sales event per revops contact concerned; a deal's
contacts are read from HubSpot, since a deal event names only the deal):

| subscription | condition | sales webhook type |
|---|---|---|
| ``contact.propertyChange`` | the owner property | ``owner_changed`` (``rep_id``: the revops rep) |
| ``deal.creation`` | | ``opportunity_created`` (``amount``) |
| ``deal.propertyChange`` | ``dealstage`` in ``won_stages`` | ``closed_won`` (``amount``) |
| ``deal.propertyChange`` | ``dealstage`` in ``lost_stages`` | ``closed_lost`` (reason) |
| ``deal.propertyChange`` | another ``dealstage`` | ``stage_changed`` (``stage``) |

Anything else is acknowledged and skipped. The delivery id is ``hubspot-<eventId>-<contact>``:
HubSpot retries a delivery with the same ``eventId``, so a retry is stored once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hubspot.exceptions import InvalidSignatureTimestampError
from hubspot.utils.signature import Signature
from pydantic import BaseModel, ConfigDict, Field

from crm.definition import CrmDefinition

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_SECONDS",
    "Deal",
    "HubSpotEvent",
    "sales_events",
    "sign_v3",
    "verify_v3",
]

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
TOLERANCE_SECONDS = 300


class HubSpotEvent(BaseModel):
    """One event of a webhook delivery, as HubSpot documents it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_id: int = Field(alias="eventId")
    subscription_type: str = Field(alias="subscriptionType", max_length=100)
    object_id: int = Field(alias="objectId")
    occurred_at: int = Field(alias="occurredAt", description="milliseconds since the epoch")
    property_name: str | None = Field(default=None, alias="propertyName", max_length=200)
    property_value: str | None = Field(default=None, alias="propertyValue", max_length=2000)
    portal_id: int | None = Field(default=None, alias="portalId")

    @property
    def at(self) -> datetime:
        """When it happened."""
        return datetime.fromtimestamp(self.occurred_at / 1000, UTC)

    @property
    def needs_deal(self) -> bool:
        """A deal event: its contacts, amount and reason are read from HubSpot."""
        return self.subscription_type in ("deal.creation", "deal.propertyChange") and (
            self.subscription_type == "deal.creation" or self.property_name == "dealstage"
        )


class Deal(BaseModel):
    """A deal as read back: stage, amount, lost reason and its contacts' CRM ids."""

    id: str
    stage: str | None = None
    amount: float | None = None
    lost_reason: str | None = None
    contact_ids: list[str] = Field(default_factory=list)


def sign_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """The v3 signature HubSpot puts on a request (used by tests and by ``verify_v3``)."""
    return str(Signature.get_signature(secret, body, "v3", uri, method, timestamp))


def verify_v3(
    secret: str,
    method: str,
    uri: str,
    body: str,
    signature: str | None,
    timestamp: str | None,
    now: float,
) -> str | None:
    """Why the request is refused (None: HubSpot signed it within five minutes)."""
    if not signature or not timestamp or not timestamp.isdigit():
        return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
    if abs(now - int(timestamp) / 1000) > TOLERANCE_SECONDS:
        return "signature timestamp is outside the 5-minute tolerance"
    try:
        valid = Signature.is_valid(signature, secret, body, uri, method, "v3", timestamp)
    except InvalidSignatureTimestampError:
        return "signature timestamp is outside the 5-minute tolerance"
    return None if valid else "signature does not match"


def _rep_of(crm_owner: str | None, definition: CrmDefinition) -> str | None:
    if not crm_owner:
        return None
    reps = {owner: rep for rep, owner in definition.owners.items()}
    return reps.get(crm_owner, crm_owner)


def _deal_event(event: HubSpotEvent, deal: Deal, definition: CrmDefinition) -> dict[str, Any]:
    pull = definition.pull
    base: dict[str, Any] = {"opportunity_id": f"hubspot-{deal.id}"}
    if deal.amount is not None:
        base["amount"] = deal.amount
    if event.subscription_type == "deal.creation":
        return {**base, "type": "opportunity_created"}
    stage = event.property_value or deal.stage or ""
    if stage in pull.won_stages:
        return {**base, "type": "closed_won"}
    if stage in pull.lost_stages:
        reason = deal.lost_reason or pull.default_lost_reason
        return {**base, "type": "closed_lost", "reason": reason}
    return {**base, "type": "stage_changed", "stage": stage}


def sales_events(
    event: HubSpotEvent,
    contacts: dict[str, str],
    definition: CrmDefinition,
    deal: Deal | None = None,
) -> list[dict[str, Any]]:
    """The sales webhook bodies ``event`` becomes, one per revops contact concerned
    (``contacts``: CRM contact id -> revops contact id, only those revops knows)."""
    body: dict[str, Any]
    if event.subscription_type == "contact.propertyChange":
        if event.property_name != (definition.owner_property or "hubspot_owner_id"):
            return []
        targets = [str(event.object_id)]
        body = {"type": "owner_changed", "rep_id": _rep_of(event.property_value, definition)}
    elif event.needs_deal and deal is not None:
        targets = deal.contact_ids
        body = _deal_event(event, deal, definition)
    else:
        return []
    out = []
    for crm_id in targets:
        contact_id = contacts.get(crm_id)
        if contact_id is None:
            continue
        out.append(
            {
                **{k: v for k, v in body.items() if v is not None},
                "id": f"hubspot-{event.event_id}-{contact_id}",
                "occurred_at": event.at.isoformat(),
                "contact": {"contact_id": contact_id},
                "properties": {"via": "hubspot", "crm_object_id": str(event.object_id)},
            }
        )
    return out
