"""An event as accepted at the edge, before identity resolution.

The gateway turns every Segment call (track, identify, page, screen, group, alias) and every sales
webhook into one of these; the CLI's ``events send`` builds one the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["AcceptResult", "IncomingEvent", "IncomingType"]

IncomingType = Literal["track", "identify", "page", "screen", "group", "alias", "sales"]


class IncomingEvent(BaseModel):
    """A validated event; ``name`` is the behaviour name the contact workflow counts."""

    message_id: str
    type: IncomingType
    name: str
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    received_at: datetime


class AcceptResult(BaseModel):
    """What the store did with a batch: new events, duplicates, contacts to deliver to."""

    accepted: int = 0
    duplicates: int = 0
    anonymous: int = 0
    refused: int = 0
    """Events of erased people, refused (stored nowhere; docs/privacy.md)."""
    contact_ids: list[str] = Field(default_factory=list)
    urgent_contact_ids: list[str] = Field(default_factory=list)
    """Contacts of the accepted events named in ``urgent`` (hand-raisers): deliver first."""
