"""The contact's live state as the contact workflow keeps it, and the lifecycle stages.

State crosses continue-as-new whole, so everything a contact needs to carry on is here.
No email or name: traits that are personal data stay in the store (see ``PERSONAL_TRAITS``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.events import ContactEvent
from models.facts import EventRecord

__all__ = [
    "PERSONAL_TRAITS",
    "STAGES",
    "Consent",
    "ContactConfig",
    "ContactInput",
    "ContactState",
    "LifecycleRules",
    "Renurture",
    "Stage",
    "StageEntry",
    "StagePromotion",
    "Wakeup",
]


class Stage(StrEnum):
    """Lifecycle stages in promotion order."""

    SUBSCRIBER = "Subscriber"
    LEAD = "Lead"
    MQL = "MQL"
    SAL = "SAL"
    SQL = "SQL"
    OPPORTUNITY = "Opportunity"
    CUSTOMER = "Customer"
    EVANGELIST = "Evangelist"

    @property
    def rank(self) -> int:
        """Position in the funnel: a promotion goes to a higher rank only."""
        return STAGES.index(self)


STAGES: tuple[Stage, ...] = tuple(Stage)

# Traits kept in the store only; the workflow gets the email's domain instead.
PERSONAL_TRAITS = frozenset(
    {"email", "name", "first_name", "last_name", "firstName", "lastName", "phone", "address"}
)


class StageEntry(BaseModel):
    """One stage entered: when, why, and whether it was a manual override."""

    stage: Stage
    at: datetime
    reason: str
    override: bool = False
    message_id: str | None = None


class Consent(BaseModel):
    """Consent state, enforced before every send."""

    subscribed: bool = True
    unsubscribed_at: datetime | None = None
    gdpr_consent: bool | None = None
    ccpa_opt_out: bool = False

    @property
    def marketing_allowed(self) -> bool:
        """True when marketing messages may be sent."""
        return (
            self.subscribed
            and self.unsubscribed_at is None
            and self.gdpr_consent is not False
            and not self.ccpa_opt_out
        )


class StagePromotion(BaseModel):
    """A rule: this event (optionally of a sales ``kind``) promotes to ``stage``."""

    event: str
    stage: Stage


class LifecycleRules(BaseModel):
    """Which behaviours move a contact up the funnel (config/lifecycle.yaml)."""

    initial_stage: Stage = Stage.SUBSCRIBER
    promotions: list[StagePromotion] = Field(default_factory=list)
    closed_lost_event: str = "Closed Lost"
    recycle_after_days: float = Field(default=90, gt=0)

    def stage_for(self, event_name: str) -> Stage | None:
        """The stage an event promotes to, if any (the highest rule wins)."""
        stages = [p.stage for p in self.promotions if p.event == event_name]
        return max(stages, key=lambda s: s.rank) if stages else None


class Wakeup(BaseModel):
    """A durable timer the contact workflow keeps: at ``at``, do ``kind``."""

    at: datetime
    kind: Literal["recycle"]
    reason: str


class Renurture(BaseModel):
    """Membership of the re-nurture list: a contact sales is not working any more."""

    since: datetime
    reason: str


class ContactConfig(BaseModel):
    """Definitions the contact workflow evaluates, pinned by ``version``."""

    version: str = "builtin"
    lifecycle: LifecycleRules = Field(default_factory=LifecycleRules)
    event_window_days: int = 180
    max_events_kept: int = 2000
    history_limit: int = Field(default=2000, ge=20)
    """History length at which the workflow continues as new (well under Temporal's limits)."""


class ContactState(BaseModel):
    """Everything the contact workflow knows; carried across continue-as-new."""

    contact_id: str
    created_at: datetime
    stage: Stage | None = None
    stage_history: list[StageEntry] = Field(default_factory=list)
    traits: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = None
    consent: Consent = Field(default_factory=Consent)
    event_counts: dict[str, int] = Field(default_factory=dict)
    events: list[EventRecord] = Field(default_factory=list)
    seen_message_ids: list[str] = Field(default_factory=list)
    events_applied: int = 0
    last_event_at: datetime | None = None
    wakeups: list[Wakeup] = Field(default_factory=list)
    renurture: Renurture | None = None
    runs: int = 1

    def stage_entered_at(self, stage: Stage) -> datetime | None:
        """When ``stage`` was first entered, for time-in-stage reports."""
        return next((e.at for e in self.stage_history if e.stage == stage), None)


class ContactInput(BaseModel):
    """Start (or continue-as-new) input of the contact workflow."""

    contact_id: str
    state: ContactState | None = None
    config: ContactConfig | None = None
    pending: list[ContactEvent] = Field(default_factory=list)
