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
from revops.lists import DemandStatesConfig, ListsConfig
from revops.scoring import GateResult, ScoreCard, ScoringModel

__all__ = [
    "PERSONAL_TRAITS",
    "STAGES",
    "Consent",
    "ContactConfig",
    "ContactInput",
    "ContactState",
    "DemandStateEntry",
    "Enrollment",
    "Explanation",
    "HandoffRef",
    "LifecycleRules",
    "PastEnrollmentEntry",
    "Renurture",
    "Scores",
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
    scoring: ScoringModel | None = None
    lists: ListsConfig | None = None
    demand_states: DemandStatesConfig | None = None
    renurture_list: str = "Re-nurture"
    auto_handoff: bool = True
    """Start the sales handoff (routing, SLA) when a contact becomes an MQL."""
    handoff_task_queue: str | None = None
    """Task queue for the handoff child (the priority queue: speed-to-lead). ``None``, as in
    configs loaded before it existed, keeps the child on the contact's own queue."""
    event_window_days: int = 180
    max_events_kept: int = 2000
    history_limit: int = Field(default=2000, ge=20)
    """History length at which the workflow continues as new (well under Temporal's limits)."""


class DemandStateEntry(BaseModel):
    """A demand (buying) state entered, and the one it came from."""

    state: str
    at: datetime
    previous: str | None = None


class Scores(BaseModel):
    """The contact's current scores (each 0..100) and what is behind them."""

    fit: float = 0
    engagement: float = 0
    engagement_recent: float = 0
    model_version: str = ""
    top_behaviours: list[str] = Field(default_factory=list)
    segment: str | None = None
    gate: str = ""
    computed_at: datetime | None = None


class Enrollment(BaseModel):
    """A journey the contact is in (or was paused in), pinned to a definition version."""

    enrollment_id: str
    journey: str
    version: int
    priority: int = 0
    exclusivity_group: str | None = None
    enrolled_at: datetime
    paused: bool = False
    workflow_id: str | None = None


class PastEnrollmentEntry(BaseModel):
    """An earlier entry into a journey, for re-enrollment policies."""

    journey: str
    enrolled_at: datetime


class HandoffRef(BaseModel):
    """The contact's sales handoff: who owns it and where its SLA stands."""

    handoff_id: str
    workflow_id: str
    started_at: datetime
    trigger: str
    owner: str | None = None
    team: str | None = None
    sla_state: str = "routing"
    deadline: datetime | None = None
    first_contact_at: datetime | None = None
    outcome: str | None = None
    outcome_reason: str | None = None


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
    scores: Scores | None = None
    lists: list[str] = Field(default_factory=list)
    list_since: dict[str, datetime] = Field(default_factory=dict)
    static_lists: list[str] = Field(default_factory=list)
    demand_state: str | None = None
    demand_history: list[DemandStateEntry] = Field(default_factory=list)
    next_evaluation_at: datetime | None = None
    enrollments: list[Enrollment] = Field(default_factory=list)
    past_enrollments: list[PastEnrollmentEntry] = Field(default_factory=list)
    enrollment_counter: int = 0
    last_sales_activity_at: datetime | None = None
    handoff: HandoffRef | None = None
    handoff_counter: int = 0
    merged_into: str | None = None
    """Set when an alias merged this contact into another; its workflow then completes."""
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


class Explanation(BaseModel):
    """Why a contact is where it is, computed now from its live state and pinned definitions."""

    at: datetime
    card: ScoreCard | None = None
    gate: GateResult | None = None
