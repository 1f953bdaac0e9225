"""The contact's live state as the contact workflow keeps it, and its rules call's I/O.

State crosses continue-as-new whole, so everything a contact needs to carry on is here.
No email or name: traits that are personal data stay in the store (see ``PERSONAL_TRAITS``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from audience.accounts import AccountsConfig
from audience.consent import Consent
from audience.demand_states import DemandStateEntry, DemandStatesConfig
from audience.facts import AccountFacts, EventRecord
from audience.lists import ListsConfig
from journeys.definition import JourneyDefinition, parse_journey
from lifecycle.recycle import RecyclePolicy
from lifecycle.stages import LifecycleRules, Stage, StageEntry
from models.decisions import Decision, DecisionRequest, Occurrence
from models.events import ContactEvent
from revops.errors import ConfigError
from scoring.model import GateResult, ScoreCard, ScoringModel

__all__ = [
    "PERSONAL_TRAITS",
    "AccountLink",
    "ContactConfig",
    "ContactInput",
    "ContactState",
    "CrmPushed",
    "DecideStepInput",
    "DecideStepResult",
    "Enrollment",
    "Explanation",
    "HandoffRef",
    "PastEnrollmentEntry",
    "PinnedJourney",
    "Renurture",
    "Scores",
    "Wakeup",
]


# Traits kept in the store only; the workflow gets the email's domain instead.
PERSONAL_TRAITS = frozenset(
    {"email", "name", "first_name", "last_name", "firstName", "lastName", "phone", "address"}
)


class Wakeup(BaseModel):
    """A durable timer the contact workflow keeps: at ``at``, do ``kind``.

    A recycle names its ``cause`` and its destination (``to_list`` or ``to_journey``); one
    without (kept by 1.0.0) goes to the re-nurture list.
    """

    at: datetime
    kind: Literal["recycle"]
    reason: str
    cause: str | None = None
    to_list: str | None = None
    to_journey: str | None = None


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
    recycle: RecyclePolicy | None = None
    """Where recycled contacts go and when; None (a config pinned by 1.0.0): Closed Lost goes
    to ``renurture_list`` after ``lifecycle.recycle_after_days``, the rest at once."""
    renurture_list: str = "Re-nurture"
    auto_handoff: bool = True
    """Start the sales handoff (routing, SLA) when a contact becomes an MQL."""
    handoff_task_queue: str | None = None
    """Task queue for the handoff child (the priority queue: speed-to-lead). ``None``, as in
    configs loaded before it existed, keeps the child on the contact's own queue."""
    accounts: AccountsConfig | None = None
    """Which account a contact belongs to (None: a config pinned before accounts existed)."""
    event_window_days: int = 180
    max_events_kept: int = 2000
    history_limit: int = Field(default=2000, ge=20)
    """History length at which the workflow continues as new (well under Temporal's limits)."""
    crm_score_threshold: float | None = None
    """Push to the CRM (``crm`` definition) when something it shows changes, and a score when it
    moved at least this far; None: no CRM (and configs pinned before the CRM loop)."""


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
    paused_by: str | None = None
    """Who paused it: the pre-empting journey, ``hand-raiser`` or ``hold`` (None: 1.0.0)."""
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
    stage: str | None = None
    """``ae`` once an SDR qualified the lead and an Account Executive owns it."""
    source_owner: str | None = None
    """The SDR who qualified the lead (kept visible as the source once an AE owns it)."""


class CrmPushed(BaseModel):
    """What the contact last sent to the CRM, to tell what changed since (docs/crm.md)."""

    count: int = 0
    fit: float | None = None
    engagement: float | None = None
    owner: str | None = None
    sla_state: str | None = None


class AccountLink(BaseModel):
    """The account a contact belongs to (opaque id), how it was found, what was last sent."""

    account_id: str
    key: str
    """``domain:acme.com`` or ``group:<groupId>``."""
    via: Literal["group", "domain"]
    since: datetime
    sent: str = ""
    """The member facts last sent to the account (unchanged facts are not sent again)."""
    told: list[str] = Field(default_factory=list)
    """The behaviours already told, as ``<day> <name>``: the account needs each member's
    latest engagement to the day and how it engaged, not every repeat of a page view."""


class ContactState(BaseModel):
    """Everything the contact workflow knows; carried across continue-as-new."""

    contact_id: str
    created_at: datetime
    stage: Stage | None = None
    stage_history: list[StageEntry] = Field(default_factory=list)
    traits: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = None
    """The Segment ``groupId`` of the contact's latest ``group`` call (as 1.0.0 kept it)."""
    account: AccountFacts | None = None
    """The account as its workflow last told this member (conditions read it)."""
    account_link: AccountLink | None = None
    account_seq: int = 0
    accounts_reached: list[str] = Field(default_factory=list)
    """Accounts whose workflow this contact started or reached: told by a signal from the
    workflow itself, without a signal-with-start round trip in the contact's task."""
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
    crm_pushed: CrmPushed | None = None
    """What the CRM was last told (None: nothing yet, or no CRM)."""
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


class DecideStepInput(BaseModel):
    """The contact's facts once, and every occurrence of this step, decided in order."""

    base: DecisionRequest
    occurrences: list[Occurrence] = Field(default_factory=list)


class PinnedJourney(BaseModel):
    """A journey at the version an enrollment pins, validated by the rules activity."""

    name: str
    version: int
    definition: JourneyDefinition


class DecideStepResult(BaseModel):
    """One decision per occurrence, and the definitions of journeys to enroll in."""

    decisions: list[Decision] = Field(default_factory=list)
    journeys: dict[str, PinnedJourney] = Field(default_factory=dict)

    @field_validator("journeys", mode="before")
    @classmethod
    def _from_bodies(cls, journeys: Any) -> Any:
        # Results recorded by 1.0.0 workers carry each journey's raw YAML ``body``: read it as
        # the definition, and leave out one that does not validate (it started no child then),
        # so their histories replay alike. Remove when 1.0.0 histories are no longer supported.
        if not isinstance(journeys, dict):
            return journeys
        found = {}
        for name, pinned in journeys.items():
            if isinstance(pinned, dict) and "body" in pinned and "definition" not in pinned:
                try:
                    body = {**pinned["body"], "version": pinned["version"]}
                    pinned = {**pinned, "definition": parse_journey(body, name)}
                except ConfigError:
                    continue
            found[name] = pinned
        return found
