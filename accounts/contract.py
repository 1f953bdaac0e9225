"""What travels between contacts and their account's workflow, and the account's state.

A contact sends ``MemberUpdate`` (facts, never personal data: an opaque id, stage, scores,
demand state, committee role and executive flag derived from the title, behaviour names and
times). The account keeps one ``MemberRecord`` per member and tells every member the
``AccountFacts`` its conditions read. State crosses continue-as-new whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from audience.accounts import AccountsConfig
from audience.facts import AccountFacts

__all__ = [
    "AccountAlert",
    "AccountInput",
    "AccountRecord",
    "AccountState",
    "BehaviourSeen",
    "MemberRecord",
    "MemberUpdate",
]


class BehaviourSeen(BaseModel):
    """An engaging behaviour of a member: its name and when (no properties)."""

    name: str
    at: datetime


class MemberUpdate(BaseModel):
    """A member's facts for its account; ``seq`` orders one member's updates."""

    account_id: str
    key: str
    """What names the account: ``domain:acme.com`` or ``group:<groupId>``."""
    member: str
    seq: int
    at: datetime
    left: bool = False
    via: str = "domain"
    stage: str | None = None
    fit: float = 0
    engagement: float = 0
    demand_state: str | None = None
    role: str | None = None
    executive: bool = False
    behaviours: list[BehaviourSeen] = Field(default_factory=list)
    account_traits: dict[str, Any] = Field(default_factory=dict)
    """Traits of a Segment ``group`` call in this step (company facts, no personal data)."""


class MemberRecord(BaseModel):
    """What the account knows of one member."""

    seq: int
    joined_at: datetime
    via: str = "domain"
    stage: str | None = None
    fit: float = 0
    engagement: float = 0
    demand_state: str | None = None
    role: str | None = None
    executive: bool = False
    last_engaged_at: datetime | None = None
    recent: list[BehaviourSeen] = Field(default_factory=list)
    """The latest few engaging behaviours, newest last (for alerts and ``accounts show``)."""


class AccountState(BaseModel):
    """Everything the account workflow knows; carried across continue-as-new."""

    account_id: str
    key: str
    created_at: datetime
    traits: dict[str, Any] = Field(default_factory=dict)
    members: dict[str, MemberRecord] = Field(default_factory=dict)
    departed: dict[str, int] = Field(default_factory=dict)
    """Members that left, with the ``seq`` of their leaving (older updates are ignored)."""
    plays: int = 0
    """Account plays started (each alerted once)."""
    play_active: bool = False
    play_started_at: datetime | None = None
    priority: str = "normal"
    broadcast_key: str = ""
    """What members were last told (``accounts.state.visible_key``)."""
    broadcast_at: datetime | None = None
    broadcast_due: datetime | None = None
    """A change members have not heard yet waits for this moment (``broadcast_seconds``)."""
    told: dict[str, datetime] = Field(default_factory=dict)
    """Each engaged member's latest engagement as members last heard it (the
    ``accounts-fanin-broadcast`` patch: a later one reaches them when the heard one would soon
    leave the window, ``accounts.state.refresh_due``)."""
    updates_applied: int = 0
    runs: int = 1


class AccountInput(BaseModel):
    """Start (or continue-as-new) input of the account workflow."""

    account_id: str
    key: str
    state: AccountState | None = None
    config: AccountsConfig | None = None
    pending: list[MemberUpdate] = Field(default_factory=list)


class AccountAlert(BaseModel):
    """The joint alert of an account play: to the owner and marketing, once per play."""

    play: int
    owner: str
    marketing: str
    title: str
    text: str


class AccountRecord(BaseModel):
    """The account as the store keeps it for ``revops accounts`` (written by its workflow)."""

    facts: AccountFacts
    key: str
    plays: int = 0
    members: dict[str, MemberRecord] = Field(default_factory=dict)
    updated_at: datetime
