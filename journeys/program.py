"""A journey's step tree as a flat program, and the pure decisions its interpreter needs.

The journey workflow walks a ``Program``: every step has a number (its position, depth first,
as people count them in the YAML) and a successor (the next step in its list, or, at the end
of a nested list, the step after the one holding it). A position in a journey is therefore
just a step id, which is what continue-as-new carries and what progress reports show.

Also here, because the workflow must compute them deterministically: the stable A/B variant of
a contact (a hash, never randomness), the moment a ``wait: {until: ...}`` ends (local time in
the contact's zone, or a time held by an event), what a stale send does (``late_policy``) and
readable, personal-data-free labels for the Temporal UI. No I/O, no clocks: ``now`` is always
passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from audience.facts import EventRecord
from journeys.definition import JourneyDefinition, child_steps
from journeys.steps import (
    BranchStep,
    EnrollStep,
    ExitStep,
    GoalStep,
    HandoffStep,
    LatePolicy,
    RecycleStep,
    SendStep,
    SetStep,
    SplitStep,
    Step,
    Until,
    Variant,
    WaitForStep,
    WaitStep,
)
from revops.weekdays import WEEKDAYS

__all__ = [
    "HOLDOUT_STEP",
    "ROLLOUT_STEP",
    "Program",
    "assign_variant",
    "event_time",
    "in_holdout",
    "in_rollout",
    "journey_summary",
    "late_policy",
    "next_local_time",
    "step_kind",
    "step_label",
    "wait_until",
]


def step_kind(step: Step) -> str:
    """The kind key of a step (``send``, ``wait`` ...)."""
    kinds: dict[type, str] = {
        SendStep: "send",
        WaitStep: "wait",
        WaitForStep: "wait_for",
        BranchStep: "branch",
        SplitStep: "split",
        GoalStep: "goal",
        SetStep: "set",
        EnrollStep: "enroll",
        HandoffStep: "handoff",
        RecycleStep: "recycle",
        ExitStep: "exit",
    }
    return kinds[type(step)]


def step_label(step: Step, number: int) -> str:
    """``email 'Case study' step 3``: what a UI or a timeline shows; never personal data."""
    if isinstance(step, SendStep):
        name = step.send.name or step.id
        return f"{step.send.channel} '{name}' step {number}"
    return f"{step_kind(step)} '{step.id}' step {number}"


@dataclass(frozen=True)
class Program:
    """The step tree flattened: numbers, successors and where each nested list starts."""

    definition: JourneyDefinition
    steps: dict[str, Step] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    successor: dict[str, str | None] = field(default_factory=dict)
    variants: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, definition: JourneyDefinition) -> Program:
        """Flatten ``definition`` (its step ids are unique, checked at load time)."""
        program = cls(definition)
        program._add(definition.steps, None, None)
        return program

    def _add(
        self, steps: Sequence[Step], after: str | None, variant: tuple[str, str] | None
    ) -> None:
        for index, step in enumerate(steps):
            self.steps[step.id] = step
            self.numbers[step.id] = len(self.numbers) + 1
            if variant is not None:
                self.variants[step.id] = variant
            following = steps[index + 1].id if index + 1 < len(steps) else after
            self.successor[step.id] = following
            if isinstance(step, SplitStep):
                for arm in step.split:
                    self._add(arm.steps, following, (step.id, arm.variant))
                continue
            for _, nested in child_steps(step):
                self._add(nested, following, variant)

    @property
    def first(self) -> str:
        """The id of the journey's first step."""
        return self.definition.steps[0].id

    @property
    def size(self) -> int:
        """How many steps the journey has, nested ones included."""
        return len(self.steps)

    def start_of(self, steps: Sequence[Step], holder: str) -> str | None:
        """Where a nested list starts; an empty list goes on after its ``holder`` step."""
        return steps[0].id if steps else self.successor[holder]

    def label(self, step_id: str) -> str:
        """The step's readable label (see ``step_label``)."""
        return step_label(self.steps[step_id], self.numbers[step_id])

    def goals(self) -> list[GoalStep]:
        """Every goal step: all of them are checked all along the journey."""
        return [s for s in self.steps.values() if isinstance(s, GoalStep)]

    def variant_of(self, step_id: str) -> tuple[str, str] | None:
        """The innermost (split step id, variant) whose steps contain ``step_id``, if any."""
        return self.variants.get(step_id)


def assign_variant(contact_id: str, journey: str, step_id: str, variants: Sequence[Variant]) -> str:
    """The contact's variant: a hash of contact, journey and step spread over the weights.

    Stable (the same contact always gets the same variant of a step, also when re-enrolled
    or replayed) and uniform across contacts; no randomness, so it is safe in workflow code.
    """
    digest = hashlib.sha256(f"{contact_id}\x1f{journey}\x1f{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant.variant
        point -= variant.weight
    raise AssertionError("unreachable: the point is below the total weight")


HOLDOUT_STEP = "holdout"
"""The step id holdout assignments are recorded under (``held_out`` or ``enrolled``)."""


def in_holdout(contact_id: str, journey: str, percent: float) -> bool:
    """Whether the contact is in the journey's holdout: a hash of contact and journey, so the
    same contact is always in or always out (also when re-enrolled or replayed), uniform
    across contacts; no randomness, safe in workflow code."""
    digest = hashlib.sha256(f"{contact_id}\x1f{journey}\x1fholdout".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % 10_000
    return point < round(percent * 100)


ROLLOUT_STEP = "rollout"
"""The step id under which an enrollment of a version in rollout records ``v<version>``."""


def in_rollout(contact_id: str, journey: str, version: int, percent: float) -> bool:
    """Whether a new enrollment of the contact gets ``version`` while it rolls out to
    ``percent``: a hash of contact, journey and version (stable for the contact; a raised
    share keeps everyone already on the new version on it)."""
    digest = hashlib.sha256(f"{contact_id}\x1f{journey}\x1fv{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < round(percent * 100)


def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Local ``day at`` as UTC; a time skipped by a DST change moves to the first real minute."""
    naive = datetime.combine(day, at)
    for minutes in range(0, 180):
        candidate = naive + timedelta(minutes=minutes)
        instant = candidate.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == candidate:
            return instant
    return naive.replace(tzinfo=zone).astimezone(UTC)  # pragma: no cover - no 3 h DST gaps


def next_local_time(
    now: datetime, zone_name: str, at: time, weekdays: Sequence[str] | None = None
) -> datetime:
    """The first moment after ``now`` that is ``at`` local time on one of ``weekdays``."""
    zone = ZoneInfo(zone_name)
    allowed = {WEEKDAYS.index(d) for d in weekdays} if weekdays else set(range(7))
    today = now.astimezone(zone).date()
    for offset in range(0, 8):
        day = today + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        candidate = _local_instant(day, at, zone)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: every weekday occurs within 8 days")


def event_time(events: Sequence[EventRecord], name: str, prop: str) -> datetime | None:
    """The time held in ``prop`` of the latest ``name`` event (ISO text or epoch seconds)."""
    for event in sorted(events, key=lambda e: e.at, reverse=True):
        if event.name != name or prop not in event.properties:
            continue
        value = event.properties[prop]
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, UTC)
            if isinstance(value, str):
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def wait_until(
    until: Until, now: datetime, zone_name: str, events: Sequence[EventRecord]
) -> datetime | None:
    """When a ``wait: {until: ...}`` ends; None when the event time is unknown."""
    if until.time is not None:
        return next_local_time(now, zone_name, until.time, until.weekday)
    assert until.event is not None and until.property is not None
    moment = event_time(events, until.event, until.property)
    if moment is None:
        return None
    return moment - (until.before or timedelta(0)) + (until.after or timedelta(0))


def late_policy(
    definition: JourneyDefinition, step: SendStep, due: datetime, now: datetime
) -> LatePolicy | None:
    """What a send due at ``due`` does at ``now``: None when it is not stale (at most
    ``late.after`` past its moment), else its ``if_late`` or the journey's default for its
    kind of message (marketing or transactional)."""
    late = definition.late
    if now - due <= late.after:
        return None
    if step.send.if_late is not None:
        return step.send.if_late
    transactional = step.send.transactional or not definition.marketing
    return late.transactional if transactional else late.marketing


def journey_summary(definition: JourneyDefinition) -> str:
    """A static summary for the Temporal UI: ``journey whitepaper-nurture v2 (9 steps)``."""
    size = len(Program.of(definition).steps)
    return f"journey {definition.name} v{definition.version} ({size} steps)"
