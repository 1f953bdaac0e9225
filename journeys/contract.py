"""What crosses the journey workflow's boundaries: its input, signals, query, result, activities.

The contact workflow starts one ``JourneyWorkflow`` per enrollment (workflow id
``journey-<contact_id>-<journey>-<n>``, see ``journey_workflow_id``) with the definition
version the enrollment pinned, the contact's facts and consent. After each contact step it
signals ``contact_changed``; pre-emption and exit criteria arrive as ``stop`` (exit, or pause
until ``resume``). Toward the parent the journey signals ``journey_request`` (set a trait,
change a list, enroll elsewhere, hand off, recycle, and ``finished`` last). No personal data: facts
hold traits without email or name, and sends look addresses up in the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from audience.consent import Consent
from audience.facts import ContactFacts, EventRecord
from journeys.definition import JourneyDefinition
from journeys.enrollment import JourneyEnrollment

__all__ = [
    "CheckSendInput",
    "CheckSendResult",
    "JourneyCarry",
    "JourneyContactUpdate",
    "JourneyInput",
    "JourneyOutcome",
    "JourneyProgress",
    "JourneyRecord",
    "JourneyRequest",
    "JourneyResult",
    "JourneyStatus",
    "JourneyStop",
    "RecordKind",
    "RequestKind",
    "StepRecord",
    "journey_workflow_id",
]

JourneyOutcome = Literal["completed", "goal", "exited", "stopped"]
JourneyStatus = Literal["running", "waiting", "paused", "finished"]
RecordKind = Literal["assigned", "variant_sent", "converted"]
RequestKind = Literal[
    "set_trait", "list_add", "list_remove", "enroll", "handoff", "recycle", "finished"
]


def journey_workflow_id(contact_id: str, journey: str, n: int) -> str:
    """``journey-<contact_id>-<journey>-<n>``: the n-th enrollment of a contact in a journey."""
    return f"journey-{contact_id}-{journey}-{n}"


class JourneyCarry(BaseModel):
    """Where a journey stands, carried across continue-as-new (not set on a first start)."""

    cursor: str | None
    wait_until: datetime | None = None
    wait_since: datetime | None = None
    attempt: int = 1
    started_at: datetime
    progress: JourneyProgress
    recent_events: list[EventRecord] = Field(default_factory=list)
    own_sends: dict[str, datetime] = Field(default_factory=dict)
    assignments: dict[str, str] = Field(default_factory=dict)
    paused: bool = False
    stop: JourneyStop | None = None
    due: datetime | None = None
    """When the current step became due (a wait's end): how late it runs."""
    catch_up: bool = False
    """Stale steps were skipped to the next one on the original schedule: waits count from
    when they were due until one really waits."""
    held_out_until: datetime | None = None
    """A held-out enrollment: nothing is sent; its goals are watched until then."""


class JourneyInput(BaseModel):
    """Start input: the pinned definition and the contact as it stands.

    ``not_before`` delays the first step (simulations start at a business hour);
    ``history_limit`` is the history length at which the run continues as new.
    """

    contact_id: str
    enrollment_id: str
    definition: JourneyDefinition
    facts: ContactFacts
    consent: Consent
    time_zone: str = "UTC"
    not_before: datetime | None = None
    history_limit: int = Field(default=2000, ge=40)
    carry: JourneyCarry | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """A contact's ``timezone`` trait is free text: an unknown zone means UTC (refusing it
        would fail the parent's workflow task, and every wait and send check later)."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return "UTC"
        return value


class JourneyContactUpdate(BaseModel):
    """Signal ``contact_changed``: the latest facts and consent, and events since the last."""

    facts: ContactFacts
    consent: Consent
    new_events: list[EventRecord] = Field(default_factory=list)


class JourneyStop(BaseModel):
    """Signal ``stop``: leave the journey, or (``pause``) hold it until ``resume``."""

    reason: str
    pause: bool = False


class JourneyRequest(BaseModel):
    """Signal ``journey_request`` to the parent contact workflow."""

    enrollment_id: str
    kind: RequestKind
    name: str | None = None
    value: Any = None
    outcome: str | None = None


class StepRecord(BaseModel):
    """One step taken: when, what came of it, and details (a reason, a subject, a variant)."""

    step: str
    number: int
    kind: str
    at: datetime
    outcome: str
    detail: str = ""
    subject: str | None = None
    variant: str | None = None


class JourneyProgress(BaseModel):
    """Query ``progress``: where the journey is and every step taken so far."""

    enrollment_id: str
    journey: str
    version: int
    status: JourneyStatus = "running"
    current_step: str | None = None
    outcome: JourneyOutcome | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    requests: list[JourneyRequest] = Field(default_factory=list)
    runs: int = 1


class JourneyResult(BaseModel):
    """How the journey ended and how many steps it took."""

    enrollment_id: str
    outcome: JourneyOutcome
    steps_taken: int


class CheckSendInput(BaseModel):
    """Ask the rules, at send time, whether a step may send now."""

    contact_id: str
    enrollment_id: str
    journey: JourneyEnrollment
    enrolled_at: datetime
    step: str
    channel: str
    transactional: bool
    facts: ContactFacts
    consent: Consent
    time_zone: str = "UTC"
    own_sends: dict[str, datetime] = Field(default_factory=dict)
    """This enrollment's sends (key -> workflow time), which the cap counts at that time."""


class CheckSendResult(BaseModel):
    """The verdict: allow, defer until ``until``, or suppress, with the reason in words."""

    verdict: Literal["allow", "defer", "suppress"]
    until: datetime | None = None
    reason: str = ""
    ruleset_version: str = ""


class JourneyRecord(BaseModel):
    """Something the store keeps for reports: a split assignment, a variant sent, a conversion."""

    kind: RecordKind
    enrollment_id: str
    contact_id: str
    journey: str
    version: int
    step: str
    variant: str | None = None
    at: datetime


JourneyCarry.model_rebuild()
