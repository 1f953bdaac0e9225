"""A snapshot of what is known about one contact at one moment.

Conditions (lists, journey triggers and branches, routing, scoring segments) and the rules
module all evaluate against this one shape, so each part sees the same facts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["COMMITTEE_ROLES", "AccountFacts", "ContactFacts", "EngagedMember", "EventRecord"]


class EventRecord(BaseModel):
    """One behaviour of the contact: a tracked event, a page view, a sales activity."""

    model_config = ConfigDict(frozen=True)

    name: str
    at: datetime
    properties: dict[str, Any] = Field(default_factory=dict)


COMMITTEE_ROLES = ("economic_buyer", "champion", "technical_evaluator", "user")
"""Buying committee roles an account's members hold (from their titles; docs/accounts.md)."""


class EngagedMember(BaseModel):
    """A member of an account who engaged, and when last (opaque contact id only)."""

    model_config = ConfigDict(frozen=True)

    member: str
    at: datetime
    role: str | None = None
    executive: bool = False


class AccountFacts(BaseModel):
    """What a contact's conditions see of its account (``{account: {...}}`` conditions).

    Kept by the account's workflow and sent to every member when it changes, so members read
    the account's traits, engagement, committee and scores without copying them. No personal
    data: members are opaque contact ids, roles come from titles but are not titles.
    """

    account_id: str
    name: str | None = None
    domain: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    owner: str | None = None
    engaged: list[EngagedMember] = Field(default_factory=list)
    """Each member's latest engagement, oldest first."""
    committee: list[str] = Field(default_factory=list)
    """Buying committee roles held by members (economic_buyer, champion, ...)."""
    scores: dict[str, float] = Field(default_factory=dict)
    demand_state: str | None = None
    stage: str | None = None
    priority: str = "normal"
    """``high`` while an executive engages: routes to the account's top tier."""
    members: int = 0


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
    account: AccountFacts | None = None
