"""What crosses the boundaries of the sales handoff: workflow input, signals, query, results.

The contact workflow starts one ``HandoffWorkflow`` (id ``handoff-<contact_id>-<n>``) the moment
a contact becomes an MQL or raises a hand, forwards sales activity to it (signal
``sales_activity``), and hears back (signal ``handoff_update``) whenever the owner or the SLA
state changes. Everything here is JSON-friendly and carries opaque ids only: the contact's
personal data stays in the store; reps are employees, identified by their routing id.

The handoff's own live state (``HandoffState``) is here too, so it can cross continue-as-new
whole, and so are the activity inputs and results (one model in, one out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from handoff.routing import RoutingDecision, RoutingInput, RoutingMethod, RoutingStage, SlaPlan
from handoff.settings import HandoffConfig, NoticeChannel
from models.effects import EffectResult

__all__ = [
    "AssignRequest",
    "AssignResult",
    "HandoffBrief",
    "HandoffInput",
    "HandoffResult",
    "HandoffResume",
    "HandoffState",
    "HandoffUpdate",
    "Notice",
    "NoticeKind",
    "NoticeResult",
    "Outcome",
    "OwnerTurn",
    "Person",
    "RecordResult",
    "ReleaseRequest",
    "ReleaseResult",
    "SalesActivity",
    "SlaRecord",
    "SlaState",
    "SlaStatus",
    "StageSource",
    "TimerKind",
    "TurnRecord",
]

SlaState = Literal[
    "routing",
    "waiting",
    "met",
    "breached",
    "escalated",
    "reassigned",
    "accepted",
    "rejected",
    "closed",
]
"""Where the handoff stands. ``routing`` until an owner is chosen; ``waiting`` for the first
touch; ``met`` touched in time; ``breached`` the deadline passed (or the touch came late);
``escalated`` the manager was told; ``reassigned`` a new owner works on a new SLA;
``accepted`` (-> SAL), ``rejected`` and ``closed`` (won or lost) are the lead's outcome."""

Outcome = Literal["rejected", "closed_won", "closed_lost", "expired"]
TimerKind = Literal["reminder", "breach", "second_breach", "reply_warning", "expire"]
NoticeKind = Literal[
    "assigned", "reminder", "escalation", "reassigned_away", "reply_warning", "customer_success"
]


# --- configuration -------------------------------------------------------------------------


# --- contract with the contact workflow ------------------------------------------------------


class SalesActivity(BaseModel):
    """Signal ``sales_activity``: one thing sales did, as the sales webhook named it."""

    name: str
    at: AwareDatetime
    properties: dict[str, Any] = Field(default_factory=dict)


class OwnerTurn(BaseModel):
    """One owner's turn on the lead, with the SLA plan it runs on."""

    seq: int
    owner: str
    team: str | None
    manager: str | None
    method: RoutingMethod
    reassigned_from: str | None = None
    assigned_at: datetime
    plan: SlaPlan
    reminded: bool = False
    breaches: int = 0
    stage: RoutingStage = "sdr"
    responded_at: datetime | None = None
    """This turn's first response (touch, accept, qualify, reject); None while waiting."""
    touched_at: datetime | None = None
    """This turn's first touch (email, call, meeting), for time to first touch per stage."""


class StageSource(BaseModel):
    """Who qualified the lead for the AE: the SDR, their team, when, their notes."""

    owner: str
    team: str | None
    qualified_at: datetime
    notes: str | None = None
    deal_size: float | None = None


class HandoffState(BaseModel):
    """Everything the handoff knows; carried across continue-as-new."""

    state: SlaState = "routing"
    turns: list[OwnerTurn] = Field(default_factory=list)
    first_contact_at: datetime | None = None
    responded_at: datetime | None = None
    sla_met: bool | None = None
    accepted_at: datetime | None = None
    opportunity_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    reminders: int = 0
    breaches: int = 0
    escalations: int = 0
    reassignments: int = 0
    reply_warning_at: datetime | None = None
    reply_warned: bool = False
    released: bool = False
    sales_context: dict[str, dict[str, Any]] = Field(default_factory=dict)
    activities: int = 0
    revision: int = 0
    stage: RoutingStage = "sdr"
    source: StageSource | None = None
    """The SDR who qualified the lead (set when the AE stage begins)."""
    breaches_before_stage: int = 0
    """Breaches of earlier stages: the current stage's SLA is met when it adds none."""

    @property
    def turn(self) -> OwnerTurn | None:
        """The current owner's turn (None while routing)."""
        return self.turns[-1] if self.turns else None


class HandoffResume(BaseModel):
    """What a handoff carries into its next run (continue-as-new)."""

    state: HandoffState
    config: HandoffConfig
    inbox: list[SalesActivity] = Field(default_factory=list)


class HandoffInput(BaseModel):
    """Start input of ``HandoffWorkflow`` (id ``handoff-<contact_id>-<n>``).

    ``config`` pins definitions (tests, replays); without it an activity loads the deployed
    routing definition (or ``config/routing.yaml``) and ``config/handoff.yaml`` once.
    """

    contact_id: str
    handoff_id: str
    trigger: Literal["hand_raiser", "score"]
    reason: str
    top_behaviours: list[str] = Field(default_factory=list)
    demand_state: str | None = None
    demand_from: str | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    lead: RoutingInput
    mql_at: AwareDatetime
    config: HandoffConfig | None = None
    resume: HandoffResume | None = None


class SlaStatus(BaseModel):
    """Query ``sla``: the SLA and the owner right now (``model_dump(mode="json")`` for JSON)."""

    handoff_id: str
    contact_id: str
    owner: str | None
    team: str | None
    deadline: datetime | None
    reminder_at: datetime | None
    state: SlaState
    first_contact_at: datetime | None
    breaches: int
    reassignments: int
    reassign_at: datetime | None = None
    escalations: int = 0
    reminders: int = 0
    sla_met: bool | None = None
    policy: str | None = None
    calendar: str | None = None
    mql_at: datetime | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    stage: RoutingStage = "sdr"
    source_owner: str | None = None
    """The SDR who qualified the lead, once an AE owns it."""
    qualified_at: datetime | None = None


class HandoffUpdate(BaseModel):
    """Signal ``handoff_update`` to the parent contact workflow: owner or SLA state changed."""

    handoff_id: str
    owner: str | None
    team: str | None
    sla_state: SlaState
    deadline: datetime | None
    first_contact_at: datetime | None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    stage: RoutingStage | None = None
    source_owner: str | None = None


class HandoffResult(BaseModel):
    """What the handoff workflow returns when the lead is rejected, closed or expires."""

    handoff_id: str
    contact_id: str
    outcome: Outcome
    outcome_reason: str | None
    owner: str | None
    team: str | None
    sla_met: bool | None
    first_contact_at: datetime | None
    accepted_at: datetime | None
    closed_at: datetime | None
    breaches: int
    reassignments: int


# --- activities -------------------------------------------------------------------------------


class AssignRequest(BaseModel):
    """Choose an owner (``step`` 0) or the next one after a second breach (``step`` n > 0).

    ``tried`` lists the owners so far, the current one last. Without ``config`` the activity
    loads the active definitions and returns them to be pinned.
    """

    handoff_id: str
    contact_id: str
    step: int = Field(ge=0)
    lead: RoutingInput
    now: datetime
    tried: list[str] = Field(default_factory=list)
    config: HandoffConfig | None = None
    fresh: bool = False
    """The first owner of a new stage (the AE after qualification): routed, not reassigned."""


class AssignResult(BaseModel):
    """The decision (with its trace) and, when the activity loaded them, the definitions."""

    decision: RoutingDecision
    config: HandoffConfig | None = None


class ReleaseRequest(BaseModel):
    """Free one open lead of ``rep_id`` (accepted, rejected, closed or expired)."""

    handoff_id: str
    rep_id: str
    reason: str
    stage: RoutingStage = "sdr"


class ReleaseResult(BaseModel):
    """Whether this call released the lead (False: an earlier attempt already did)."""

    released: bool


class TurnRecord(BaseModel):
    """One owner's turn as the SLA report sees it."""

    seq: int
    owner: str
    team: str | None
    assigned_at: datetime
    deadline: datetime
    breached: bool
    responded_at: datetime | None
    stage: RoutingStage = "sdr"
    first_touch_at: datetime | None = None


class SlaRecord(BaseModel):
    """The SLA row of one handoff, written whole after each change (``revision`` grows)."""

    handoff_id: str
    contact_id: str
    trigger: str
    policy: str | None
    state: SlaState
    mql_date: datetime
    assigned_at: datetime | None
    owner: str | None
    team: str | None
    first_contact_date: datetime | None
    responded_at: datetime | None
    deadline: datetime | None
    sla_met: bool | None
    reminders: int
    breaches: int
    escalations: int
    reassignments: int
    outcome: str | None
    outcome_reason: str | None
    turns: list[TurnRecord]
    revision: int


class RecordResult(BaseModel):
    """Whether the record was written (False: a newer revision was already stored)."""

    written: bool


class Person(BaseModel):
    """Who a notice goes to or is about: a routing id, a display name, a work address."""

    id: str
    name: str
    email: str | None = None
    timezone: str = "UTC"
    booking_link: str | None = None


class HandoffBrief(BaseModel):
    """What a rep needs to know about the lead (opaque contact id, no personal data)."""

    contact_id: str
    handoff_id: str
    trigger: Literal["hand_raiser", "score"]
    reason: str
    top_behaviours: list[str]
    demand_state: str | None
    demand_from: str | None
    scores: dict[str, float]
    mql_at: datetime
    owner: str | None
    team: str | None
    method: str | None
    routing_note: str | None
    policy: str | None
    deadline: datetime | None
    breaches: int = 0
    reassigned_from: str | None = None
    first_contact_at: datetime | None = None
    accepted_at: datetime | None = None
    opportunity_at: datetime | None = None
    closed_at: datetime | None = None
    sales_context: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stage: RoutingStage = "sdr"
    source: StageSource | None = None


class Notice(BaseModel):
    """One notice (to an owner, a manager or customer success) over one or more channels.

    Each channel is sent through ``send_effect`` with the key ``<key>/<channel>``, where
    ``key`` is ``<contact_id>/<handoff_id>/<what>``.
    """

    kind: NoticeKind
    key: str
    channels: list[NoticeChannel]
    to: Person
    about: Person | None = None
    brief: HandoffBrief
    webhook_url: str | None = None


class NoticeResult(BaseModel):
    """What each channel did (sent, duplicate or skipped with a reason)."""

    results: list[EffectResult]
