"""A snapshot of what is known about one contact at one moment.

Conditions (lists, journey triggers and branches, routing, scoring segments) and the rules
module all evaluate against this one shape, so each part sees the same facts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ContactFacts", "EventRecord"]


class EventRecord(BaseModel):
    """One behaviour of the contact: a tracked event, a page view, a sales activity."""

    model_config = ConfigDict(frozen=True)

    name: str
    at: datetime
    properties: dict[str, Any] = Field(default_factory=dict)


class ContactFacts(BaseModel):
    """What conditions may look at. ``events`` is sorted by ``at``, oldest first."""

    contact_id: str
    now: datetime
    traits: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, float] = Field(default_factory=dict)
    stage: str = "Subscriber"
    lists: frozenset[str] = frozenset()
    demand_state: str | None = None
    events: list[EventRecord] = Field(default_factory=list)
