"""How a rules decision changes a contact's journeys: exits, pauses and new enrollments.

One function, ``apply_decision``, says what a decision does to the enrollments the rules see.
The rules activity uses it between the occurrences of one step (each sees the enrollments the
previous one produced); the contact workflow uses it through ``decide_enrollments``, which
keeps the result in the contact's state and names the Temporal commands to give (stop or
pause a journey child, start one). So the two never disagree about who is enrolled where.
Pure and deterministic: ``now`` is passed in, nothing here talks to Temporal or the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contacts.contract import ContactState, Enrollment, PastEnrollmentEntry
from journeys.definition import JourneyDefinition
from models.decisions import ActiveEnrollment, Decision, PastEnrollment

__all__ = [
    "DecisionOutcome",
    "JourneyCommands",
    "JourneyLeave",
    "StartJourney",
    "StopJourney",
    "active_enrollments",
    "apply_decision",
    "decide_enrollments",
    "journey_child_id",
    "past_enrollments",
]


@dataclass(frozen=True)
class JourneyLeave:
    """A running journey a decision ends (``pause=False``) or pauses (``by`` whom)."""

    journey: str
    reason: str
    pause: bool
    by: str | None = None


@dataclass(frozen=True)
class DecisionOutcome:
    """What one decision changed, and the enrollments after it."""

    leaves: list[JourneyLeave]
    enrolls: list[ActiveEnrollment]
    active: list[ActiveEnrollment]
    past: list[PastEnrollment]
    resumes: list[str] = field(default_factory=list)
    """Paused journeys that carry on."""


def apply_decision(
    decision: Decision,
    active: Sequence[ActiveEnrollment],
    past: Sequence[PastEnrollment],
    versions: Mapping[str, int],
    now: datetime,
) -> DecisionOutcome:
    """Apply a decision's exits, pauses and enrollments to the enrollments it was made on.

    An exit wins over a pause of the same journey; pausing a paused journey changes nothing;
    a paused journey resumes only when no exit or pause names it. A new enrollment pins the
    version in ``versions`` (the definitions the rules ran on), else the one the action names.
    A contact is in a journey at most once, so journeys are named by name.
    """
    leaving = set(decision.journeys("exit"))
    pausing = set(decision.journeys("pause")) - leaving
    resuming = set(decision.journeys("resume")) - leaving - pausing
    reasons = {a.journey: a.reason for a in decision.actions if a.journey}
    pausers = {a.journey: a.by for a in decision.of_kind("pause") if a.journey}
    leaves = [
        JourneyLeave(
            e.journey,
            reasons.get(e.journey, "rules"),
            pause=e.journey in pausing,
            by=pausers.get(e.journey),
        )
        for e in active
        if e.journey in leaving or (e.journey in pausing and not e.paused)
    ]
    resumes = [e.journey for e in active if e.journey in resuming and e.paused]
    kept = [_after(e, pausing, resuming, pausers) for e in active if e.journey not in leaving]
    enrolls = [
        ActiveEnrollment(
            journey=action.journey,
            version=versions.get(action.journey) or action.version or 1,
            priority=action.priority or 0,
            exclusivity_group=action.exclusivity_group,
            enrolled_at=now,
        )
        for action in decision.of_kind("enroll")
        if action.journey is not None
    ]
    entered = [PastEnrollment(journey=e.journey, enrolled_at=now) for e in enrolls]
    return DecisionOutcome(
        leaves=leaves,
        enrolls=enrolls,
        active=[*kept, *enrolls],
        past=[*past, *entered],
        resumes=resumes,
    )


def _after(
    enrollment: ActiveEnrollment,
    pausing: set[str],
    resuming: set[str],
    pausers: Mapping[str, str | None],
) -> ActiveEnrollment:
    """An enrollment as a decision leaves it: newly paused (by whom), resumed, or as it was."""
    if enrollment.journey in pausing and not enrollment.paused:
        return enrollment.model_copy(
            update={"paused": True, "paused_by": pausers.get(enrollment.journey)}
        )
    if enrollment.journey in resuming and enrollment.paused:
        return enrollment.model_copy(update={"paused": False, "paused_by": None})
    return enrollment


# ---- the contact workflow's side ---------------------------------------------------------------


@dataclass(frozen=True)
class StopJourney:
    """Signal a running journey child to exit (or pause)."""

    workflow_id: str
    reason: str
    pause: bool


@dataclass(frozen=True)
class StartJourney:
    """Start a journey child for a new enrollment, on its pinned definition."""

    enrollment: Enrollment
    definition: JourneyDefinition


@dataclass
class JourneyCommands:
    """The Temporal commands a decision asks of the contact workflow, in order."""

    stop: list[StopJourney] = field(default_factory=list)
    start: list[StartJourney] = field(default_factory=list)
    resume: list[str] = field(default_factory=list)
    """Workflow ids of paused journeys to resume (with the latest facts first)."""


def active_enrollments(state: ContactState) -> list[ActiveEnrollment]:
    """The contact's enrollments as the rules see them."""
    return [
        ActiveEnrollment(
            journey=e.journey,
            version=e.version,
            priority=e.priority,
            exclusivity_group=e.exclusivity_group,
            enrolled_at=e.enrolled_at,
            paused=e.paused,
            paused_by=e.paused_by,
        )
        for e in state.enrollments
    ]


def past_enrollments(state: ContactState) -> list[PastEnrollment]:
    """The contact's earlier entries into journeys, for re-enrollment policies."""
    return [
        PastEnrollment(journey=p.journey, enrolled_at=p.enrolled_at) for p in state.past_enrollments
    ]


def decide_enrollments(
    state: ContactState,
    decision: Decision,
    definitions: Mapping[str, JourneyDefinition],
    now: datetime,
) -> JourneyCommands:
    """Keep a decision in the contact's state; returns the journey children to stop and start.

    ``definitions`` are the journeys that can start (validated, at the version to pin); an
    enrollment in any other journey is kept for the rules but starts no child.
    """
    versions = {name: d.version for name, d in definitions.items()}
    outcome = apply_decision(
        decision, active_enrollments(state), past_enrollments(state), versions, now
    )
    leaves = {leave.journey: leave for leave in outcome.leaves}
    commands = JourneyCommands()
    for enrollment in state.enrollments:
        if enrollment.journey in outcome.resumes:
            enrollment.paused, enrollment.paused_by = False, None
            if enrollment.workflow_id is not None:
                commands.resume.append(enrollment.workflow_id)
        leave = leaves.get(enrollment.journey)
        if leave is None:
            continue
        enrollment.paused = leave.pause
        enrollment.paused_by = leave.by if leave.pause else None
        if enrollment.workflow_id is not None:
            commands.stop.append(StopJourney(enrollment.workflow_id, leave.reason, leave.pause))
    gone = {leave.journey for leave in outcome.leaves if not leave.pause}
    state.enrollments = [e for e in state.enrollments if e.journey not in gone]
    for new in outcome.enrolls:
        definition = definitions.get(new.journey)
        enrollment = _enroll(state, new, startable=definition is not None)
        if definition is not None:
            commands.start.append(StartJourney(enrollment, definition))
    return commands


def _enroll(state: ContactState, new: ActiveEnrollment, *, startable: bool) -> Enrollment:
    state.enrollment_counter += 1
    number = state.enrollment_counter
    enrollment = Enrollment(
        enrollment_id=f"{state.contact_id}-{number}",
        journey=new.journey,
        version=new.version,
        priority=new.priority,
        exclusivity_group=new.exclusivity_group,
        enrolled_at=new.enrolled_at,
        workflow_id=journey_child_id(state.contact_id, new.journey, number) if startable else None,
    )
    state.enrollments.append(enrollment)
    state.past_enrollments.append(
        PastEnrollmentEntry(journey=new.journey, enrolled_at=new.enrolled_at)
    )
    return enrollment


def journey_child_id(contact_id: str, journey: str, number: int) -> str:
    """The workflow id of a contact's ``number``-th enrollment, in ``journey``."""
    slug = re.sub(r"[^a-z0-9]+", "-", journey.lower()).strip("-")[:40] or "journey"
    return f"journey-{contact_id}-{slug}-{number}"
