"""Events as the contact workflow receives them, already stored and stripped of personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ContactEvent",
    "ContactMerged",
    "EventBatch",
    "EventKind",
    "StageOverride",
    "StaticListChange",
]

EventKind = Literal["track", "identify", "page", "screen", "group", "alias", "sales"]


class ContactEvent(BaseModel):
    """One accepted event for one contact.

    ``timestamp`` is when it happened (the client's clock), ``received_at`` when we accepted it.
    Behaviour windows use ``timestamp``.
    """

    message_id: str
    kind: EventKind = "track"
    name: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = None


class EventBatch(BaseModel):
    """All events waiting for one contact, delivered in one signal (cheaper than one each)."""

    events: list[ContactEvent]
    config_version: str | None = None


class StageOverride(BaseModel):
    """A manual stage change by an operator: audited, reason required."""

    stage: str
    reason: str
    actor: str = "cli"


class StaticListChange(BaseModel):
    """Add a contact to, or remove it from, a static or suppression list."""

    list_name: str
    member: bool
    actor: str = "cli"


class ContactMerged(BaseModel):
    """Signal to a contact merged into another by an alias: its workflow stops."""

    contact_id: str
    """The surviving contact, which now owns this one's ids and history."""
