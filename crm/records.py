"""What revops pushes to a CRM: the contact's snapshot, the record, and the properties to write.

A ``CrmSnapshot`` is what the contact workflow knows (stage, scores, owner, MQL date, top
behaviours, demand state: no personal data) at the moment something the CRM cares about
changed; it travels through the one send path into the store's CRM queue. The pusher adds the
personal part from the store (email, traits, account) to make a ``ContactRecord``, and
``properties_to_write`` turns it into the CRM's properties under the definition's ownership:
revops-owned fields always, CRM-owned fields only where the CRM holds no value yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from crm.definition import CrmDefinition

__all__ = [
    "PUSH_REASONS",
    "ContactRecord",
    "CrmSnapshot",
    "CrmTask",
    "PushOutcome",
    "desired_properties",
    "properties_to_write",
]

PUSH_REASONS = (
    "identify",
    "stage",
    "mql",
    "owner",
    "score",
    "demand_state",
    "resync",
    "import",
)
"""Why a contact was pushed (kept with the queue row, shown by ``revops crm status``)."""


class CrmSnapshot(BaseModel):
    """The contact as its workflow knows it, when the CRM should hear about it."""

    contact_id: str
    reasons: list[str] = Field(default_factory=list)
    stage: str | None = None
    fit: float | None = None
    engagement: float | None = None
    owner: str | None = None
    sla_state: str | None = None
    mql_at: datetime | None = None
    top_behaviours: list[str] = Field(default_factory=list)
    demand_state: str | None = None
    at: datetime | None = None


class ContactRecord(BaseModel):
    """A snapshot with what only the store holds: the email (the match key), traits, account,
    and the CRM id revops stored after an earlier push."""

    snapshot: CrmSnapshot
    email: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = None
    crm_id: str | None = None


class CrmTask(BaseModel):
    """A handoff task for the CRM (created once per key, on the contact's CRM record)."""

    key: str
    contact_id: str
    title: str
    body: str = ""
    owner: str | None = None
    due_at: datetime | None = None


class PushOutcome(BaseModel):
    """What one push of a batch did: CRM ids by contact, contacts skipped (with why)."""

    crm_ids: dict[str, str] = Field(default_factory=dict)
    created: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    written: dict[str, dict[str, str]] = Field(default_factory=dict)
    """The properties written per contact (what a dry run prints)."""


def _text(value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _revops_value(name: str, record: ContactRecord, definition: CrmDefinition) -> str | None:
    snap = record.snapshot
    if name.startswith("trait:"):
        return _text(record.traits.get(name.removeprefix("trait:")))
    if name == "stage":
        return _text(definition.stages.get(snap.stage or "", snap.stage))
    if name == "lead_status":
        return _text(definition.lead_status.get(snap.sla_state or "")) if snap.sla_state else None
    values: dict[str, Any] = {
        "fit": snap.fit,
        "engagement": snap.engagement,
        "owner": snap.owner,
        "mql_at": snap.mql_at,
        "top_behaviours": snap.top_behaviours[:3],
        "demand_state": snap.demand_state,
    }
    return _text(values.get(name))


def desired_properties(
    record: ContactRecord, definition: CrmDefinition
) -> dict[str, tuple[str, bool]]:
    """Each mapped CRM property with revops' value and whether the CRM owns it (values revops
    does not know are left out: an unknown is never written as an empty value)."""
    found: dict[str, tuple[str, bool]] = {}
    for name, field in definition.fields.items():
        value = _revops_value(name, record, definition)
        if value is not None:
            found[field.property] = (value, field.owner == "crm")
    owner = record.snapshot.owner
    if definition.owner_property and owner and owner in definition.owners:
        found[definition.owner_property] = (definition.owners[owner], False)
    return found


def properties_to_write(
    desired: dict[str, tuple[str, bool]], current: dict[str, str | None] | None
) -> dict[str, str]:
    """The properties to send given the CRM's ``current`` values (None: no record yet):
    revops-owned ones that differ, CRM-owned ones only where the CRM holds nothing."""
    now = current or {}
    return {
        prop: value
        for prop, (value, crm_owned) in desired.items()
        if (not now.get(prop) if crm_owned else now.get(prop) != value)
    }
