"""What the rules module is asked and what it answers: one contact, one moment, one occurrence.

``DecisionRequest`` carries everything the rules look at (the shared ``ContactFacts`` snapshot
plus consent, deliverability, enrollments, sales activity and recent sends), so a decision is a
pure function of its input and can be replayed or explained later. ``Decision`` lists the
actions the caller applies and a trace of every rule that fired with the facts it saw; that
trace is what ``contacts why`` prints, through :func:`explain_decision`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from audience.facts import ContactFacts

__all__ = [
    "ENROLL_REQUEST_EVENT",
    "Action",
    "ActionKind",
    "ActiveEnrollment",
    "ConsentFacts",
    "Decision",
    "DecisionRequest",
    "EventOccurred",
    "ListEntered",
    "Occurrence",
    "PastEnrollment",
    "Review",
    "SendRequested",
    "StageEntered",
    "TraceEntry",
    "describe_occurrence",
    "explain_decision",
]

ActionKind = Literal["enroll", "exit", "pause", "resume", "suppress", "defer", "allow", "refuse"]

ENROLL_REQUEST_EVENT = "Journey Enroll Requested"
"""An occurrence asking for an enrollment in the journey named by its ``journey`` property (a
journey's ``enroll`` step, a recycle due): the rules decide it like a trigger of that journey."""


class ConsentFacts(BaseModel):
    """Consent as it stands now. ``gdpr_consent`` is None when GDPR does not apply."""

    model_config = ConfigDict(frozen=True)

    subscribed: bool = True
    unsubscribed: bool = False
    gdpr_consent: bool | None = None
    ccpa_opt_out: bool = False


class ActiveEnrollment(BaseModel):
    """A journey the contact is in now, with the priority and group pinned when it enrolled."""

    model_config = ConfigDict(frozen=True)

    journey: str
    version: int = Field(ge=1)
    priority: int
    exclusivity_group: str | None = None
    enrolled_at: AwareDatetime
    paused: bool = False
    paused_by: str | None = None
    """Who paused it: the journey that pre-empted it, ``hand-raiser`` or ``hold``."""


class PastEnrollment(BaseModel):
    """One earlier entry into a journey (finished or not); re-enrollment policies count these."""

    model_config = ConfigDict(frozen=True)

    journey: str
    enrolled_at: AwareDatetime


class EventOccurred(BaseModel):
    """A tracked event arrived (``Demo Requested``, ``Trial Started`` ...)."""

    kind: Literal["event"] = "event"
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


class ListEntered(BaseModel):
    """The contact just became a member of a list."""

    kind: Literal["list_entered"] = "list_entered"
    list: str


class StageEntered(BaseModel):
    """The contact just entered a lifecycle stage."""

    kind: Literal["stage_entered"] = "stage_entered"
    stage: str


class SendRequested(BaseModel):
    """A journey step wants to send something now; the rules allow, defer or suppress it."""

    kind: Literal["send"] = "send"
    journey: str
    step: str
    channel: str = "email"
    transactional: bool = False


class Review(BaseModel):
    """No trigger: re-check exits and suppressions (a window expired, a timer fired)."""

    kind: Literal["review"] = "review"


Occurrence = Annotated[
    EventOccurred | ListEntered | StageEntered | SendRequested | Review,
    Field(discriminator="kind"),
]


class DecisionRequest(BaseModel):
    """Everything one decision looks at. All times are timezone-aware; they are kept in UTC.

    ``contact`` is the shared snapshot (id, now, stage, lists, scores, traits, events) that
    entry and exit criteria evaluate; the other fields are what only the rules need.
    ``recent_marketing_sends`` are the times of marketing emails sent in the cap window.
    """

    contact: ContactFacts
    time_zone: str = "UTC"
    consent: ConsentFacts = Field(default_factory=ConsentFacts)
    hard_bounced: bool = False
    spam_complaint: bool = False
    is_competitor: bool = False
    active_enrollments: list[ActiveEnrollment] = Field(default_factory=list)
    past_enrollments: list[PastEnrollment] = Field(default_factory=list)
    last_sales_activity_at: AwareDatetime | None = None
    recent_marketing_sends: list[AwareDatetime] = Field(default_factory=list)
    suppression_lists: list[str] = Field(default_factory=list)
    """The suppression lists (``kind: suppression``) the contact is on."""
    handoff_open: bool = False
    """A sales handoff is running (no outcome yet): hand-raiser pauses hold until it ends."""
    occurrence: Occurrence

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        """Refuse unknown zone names here rather than deep inside quiet-hours arithmetic."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _aware_now(self) -> DecisionRequest:
        """A naive ``now`` would make every window ambiguous; insist on an aware one."""
        now = self.contact.now
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("contact.now must be timezone-aware")
        return self

    @property
    def contact_id(self) -> str:
        """The opaque contact id."""
        return self.contact.contact_id

    @property
    def now(self) -> datetime:
        """The decision moment, in UTC."""
        return self.contact.now.astimezone(UTC)


class Action(BaseModel):
    """One thing the caller should do (or one thing it must not do, and why).

    An ``enroll`` carries the version, priority and exclusivity group to pin on the new
    enrollment (later decisions get them back through ``ActiveEnrollment``); a ``defer``
    carries ``until``, the exact moment the send may be asked for again; a ``pause`` says
    ``by`` whom (the pre-empting journey, ``hand-raiser`` or ``hold``), which decides when
    it may resume.
    """

    kind: ActionKind
    journey: str | None = None
    version: int | None = None
    priority: int | None = None
    exclusivity_group: str | None = None
    until: AwareDatetime | None = None
    by: str | None = None
    reason: str


class TraceEntry(BaseModel):
    """One rule that fired: its name, the facts it matched (by alias) and what it derived."""

    rule: str
    facts_seen: dict[str, dict[str, Any]] = Field(default_factory=dict)
    derived: list[str] = Field(default_factory=list)


class Decision(BaseModel):
    """The answer for one request: actions to apply, signals raised, and the full trace."""

    contact_id: str
    decided_at: AwareDatetime
    occurrence_kind: str
    occurrence: str
    actions: list[Action] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)
    trace: list[TraceEntry] = Field(default_factory=list)
    ruleset_version: str

    def of_kind(self, kind: ActionKind) -> list[Action]:
        """The actions of one kind, in decision order."""
        return [a for a in self.actions if a.kind == kind]

    def journeys(self, kind: ActionKind) -> list[str]:
        """Names of the journeys an action kind applies to (``enroll``, ``exit`` ...)."""
        return [a.journey for a in self.actions if a.kind == kind and a.journey is not None]


def describe_occurrence(occurrence: Occurrence) -> str:
    """A short human phrase for what happened, used in decisions and explanations."""
    if isinstance(occurrence, EventOccurred) and occurrence.name == ENROLL_REQUEST_EVENT:
        asked = f"a request to enroll in {occurrence.properties.get('journey')}"
        why = occurrence.properties.get("reason")
        return f"{asked} ({why})" if why else asked
    if isinstance(occurrence, EventOccurred):
        return f"event {occurrence.name}"
    if isinstance(occurrence, ListEntered):
        return f"entered list {occurrence.list}"
    if isinstance(occurrence, StageEntered):
        return f"entered stage {occurrence.stage}"
    if isinstance(occurrence, SendRequested):
        kind = "transactional " if occurrence.transactional else ""
        return f"{kind}{occurrence.channel} {occurrence.step!r} of {occurrence.journey}"
    return "review"


def _when(moment: datetime | None) -> str:
    """UTC minute precision is what support staff compare with the send log."""
    if moment is None:
        return "later"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _explain_action(decision: Decision, action: Action) -> str:
    """One plain sentence per action; the wording is what ``contacts why`` prints."""
    journey = action.journey or "?"
    is_send = decision.occurrence_kind == "send"
    if action.kind == "enroll":
        return f"enrolled in {journey} (version {action.version}): {action.reason}"
    if action.kind in ("refuse", "suppress") and not is_send:
        return f"not enrolled in {journey}: {action.reason}"
    if action.kind in ("refuse", "suppress"):
        return f"not sent ({decision.occurrence}): {action.reason}"
    if action.kind == "defer":
        return f"deferred until {_when(action.until)} ({decision.occurrence}): {action.reason}"
    if action.kind == "allow":
        return f"sent ({decision.occurrence}): {action.reason}"
    if action.kind == "exit":
        return f"left {journey}: {action.reason}"
    if action.kind == "resume":
        return f"resumed {journey}: {action.reason}"
    return f"paused {journey}: {action.reason}"


def explain_decision(decision: Decision) -> list[str]:
    """Plain-words lines, one per action, e.g.
    ``not enrolled in Trial Onboarding: in Demo Follow-up (priority 90 > 50)``."""
    lines = [_explain_action(decision, action) for action in decision.actions]
    if decision.signals:
        lines.append("derived: " + ", ".join(decision.signals))
    if not decision.actions:
        lines.insert(0, f"no change: nothing to do for {decision.occurrence}")
    return lines
