"""The enrollment part of a journey definition: who enters, who leaves, and who wins.

A journey definition embeds one ``JourneyEnrollment`` (the steps live beside it). The rules
engine compiles every enrollment together with the global policies: the trigger becomes a rule,
entry and exit criteria are conditions of the one condition language (``audience.conditions``),
priority and exclusivity group decide pre-emption, and the re-enrollment policy says whether a
contact who was in the journey before may enter again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from audience.conditions import Condition, config_error
from revops.strict import StrictModel

__all__ = [
    "EventTrigger",
    "JourneyEnrollment",
    "ListTrigger",
    "OncePerDays",
    "Reenrollment",
    "StageTrigger",
    "Trigger",
    "TriggerValue",
    "parse_enrollment",
]

TriggerValue = bool | int | float | str


class EventTrigger(StrictModel):
    """Enter when event ``event`` arrives whose properties equal every ``properties`` value.

    Equality follows the condition language: strings ignore case, numeric strings compare
    as numbers. Anything richer belongs in ``entry`` (an event condition with ``where``).
    """

    kind: Literal["event"] = "event"
    event: str = Field(min_length=1)
    properties: dict[str, TriggerValue] = Field(default_factory=dict)


class ListTrigger(StrictModel):
    """Enter when the contact joins list ``list``."""

    kind: Literal["list_entered"] = "list_entered"
    list: str = Field(min_length=1)


class StageTrigger(StrictModel):
    """Enter when the contact enters lifecycle stage ``stage``."""

    kind: Literal["stage_entered"] = "stage_entered"
    stage: str = Field(min_length=1)


_TRIGGER_KEYS = (("event", "event"), ("list", "list_entered"), ("stage", "stage_entered"))


def _trigger_kind(data: Any) -> str | None:
    """YAML says ``{event: X}``, ``{list: Y}`` or ``{stage: Z}``; ``kind`` is optional."""
    if not isinstance(data, Mapping):
        return getattr(data, "kind", None)
    if "kind" in data:
        return str(data["kind"])
    return next((kind for key, kind in _TRIGGER_KEYS if key in data), None)


Trigger = Annotated[
    Union[  # noqa: UP007  # Tag annotations need the explicit Union form
        Annotated[EventTrigger, Tag("event")],
        Annotated[ListTrigger, Tag("list_entered")],
        Annotated[StageTrigger, Tag("stage_entered")],
    ],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger needs one of: event, list, stage",
    ),
]


class OncePerDays(StrictModel):
    """Re-enter at most once per ``once_per_days`` days (counted from the last entry)."""

    once_per_days: float = Field(gt=0)


Reenrollment = Literal["once", "every_time"] | OncePerDays


class JourneyEnrollment(StrictModel):
    """Enrollment settings of one journey version.

    ``priority`` may be left out when ``category`` names one of the policy priorities
    (demo_ready 90, trial 50, nurture 10 by default). ``marketing: false`` marks a
    transactional or sales-only journey: marketing suppressions and the frequency cap do not
    apply to it. ``acquisition`` journeys are left (and not entered) by customers. A journey
    without a ``trigger`` is entered only on request: another journey's ``enroll`` step or a
    recycle policy naming it. ``on_resume`` says what a paused journey does once nothing holds
    it any more: carry on (its remaining steps meet the rules again at each send) or exit.
    """

    name: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    trigger: Trigger | None = None
    entry: Condition | None = None
    exit: Condition | None = None
    category: str | None = None
    priority: int | None = None
    exclusivity_group: str | None = None
    on_preempt: Literal["exit", "pause"] = "exit"
    on_resume: Literal["resume", "exit"] = "resume"
    reenrollment: Reenrollment = "once"
    marketing: bool = True
    acquisition: bool = True

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        """Names are keys in traces and workflow ids; stray spaces make two journeys of one."""
        if value != value.strip():
            raise ValueError("journey name must not start or end with spaces")
        return value


def parse_enrollment(data: Any, where: str = "") -> JourneyEnrollment:
    """Validate an enrollment mapping; a bad one is a ConfigError naming ``where`` and the field."""
    try:
        return JourneyEnrollment.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, where) from exc
