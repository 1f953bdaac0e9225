"""The steps of a journey definition: what each YAML step says, validated once at load time.

A journey is a tree of steps. Each step has an ``id`` (unique in the journey: it is part of
the idempotency key of every send, so it must never be reused for another step) and exactly
one key naming its kind: ``send``, ``wait``, ``wait_for``, ``branch``, ``split``, ``goal``,
``set``, ``enroll``, ``handoff``, ``recycle`` or ``exit``. ``branch``, ``split`` and
``wait_for`` hold nested step lists; after a nested list ends, the journey carries on after
the step holding it.

Conditions (branch ``if``, ``goal``) are the one condition language of ``audience.conditions``;
durations are ``revops.durations.Duration`` (``30m``, ``12h``, ``7d``, ``2w``). Templates (subjects,
bodies, texts) are Jinja2, checked for syntax here and rendered by the send activity.

This module is imported by workflow code: models only, no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time as clock_time
from typing import Annotated, Any, Literal, Union

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from audience.conditions import Condition, Predicate
from revops.durations import Duration
from revops.strict import StrictModel, one_key_discriminator
from revops.weekdays import WEEKDAYS, Weekday

__all__ = [
    "STEP_KINDS",
    "BranchArm",
    "BranchStep",
    "CrmTaskSend",
    "EmailSend",
    "EnrollStep",
    "ExitStep",
    "GoalStep",
    "HandoffSpec",
    "HandoffStep",
    "LatePolicy",
    "RecycleStep",
    "SendSpec",
    "SendStep",
    "SetSpec",
    "SetStep",
    "SlackSend",
    "SmsSend",
    "SplitStep",
    "Step",
    "StepId",
    "Until",
    "Variant",
    "WaitForSpec",
    "WaitForStep",
    "WaitSpec",
    "WaitStep",
    "WebhookSend",
]

STEP_KINDS: tuple[str, ...] = (
    "send",
    "wait",
    "wait_for",
    "branch",
    "split",
    "goal",
    "set",
    "enroll",
    "handoff",
    "recycle",
    "exit",
)
"""The key that names a step's kind; a step has exactly one of them."""

LatePolicy = Literal["send_late", "skip", "skip_to_next"]
"""What a send whose moment passed long ago does (the worker was down, the journey paused):
``send_late`` sends it now; ``skip`` leaves it out and carries on, later steps keeping their
intervals from now; ``skip_to_next`` leaves out every step whose moment has passed and
carries on at the next one on the journey's original schedule."""

_TAG_PREFIX = "step:"
_SYNTAX = SandboxedEnvironment()


def _template(text: str) -> str:
    """A Jinja2 template that parses (rendering happens in the send activity)."""
    try:
        _SYNTAX.parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
    return text


Template = Annotated[str, AfterValidator(_template)]
StepId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    Field(description="Unique in the journey; letters, digits, '-', '_', '.' (no '/')."),
]


# ---------------------------------------------------------------------------------------------
# send
# ---------------------------------------------------------------------------------------------


class _SendBase(StrictModel):
    """What every channel shares: a display name, whether the send is transactional, and
    what it does when its moment passed long ago (the journey's ``late`` policy when unset)."""

    name: str | None = Field(
        default=None, description="Shown in timelines and the Temporal UI (no personal data)."
    )
    transactional: bool = Field(
        default=False,
        description="Exempt from the frequency cap, quiet hours and marketing suppression.",
    )
    if_late: LatePolicy | None = Field(
        default=None,
        description="send_late, skip or skip_to_next when the step is stale (journey default).",
    )


class EmailSend(_SendBase):
    """An email rendered with the contact's profile (``{{ contact.first_name }}``)."""

    channel: Literal["email"]
    subject: Template = Field(min_length=1)
    body: Template = Field(min_length=1)
    html: Template | None = None
    to_rep: str | None = Field(default=None, description="Send to this rep instead.")


class SmsSend(_SendBase):
    """A text message through the configured SMS provider."""

    channel: Literal["sms"]
    text: Template = Field(min_length=1)


class WebhookSend(_SendBase):
    """A JSON POST (HMAC-signed when a secret is configured)."""

    channel: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    body: dict[str, Any] = Field(default_factory=dict)


class SlackSend(_SendBase):
    """A Slack incoming-webhook message (the configured webhook unless given)."""

    channel: Literal["slack"]
    text: Template = Field(min_length=1)
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    blocks: tuple[dict[str, Any], ...] = ()


class CrmTaskSend(_SendBase):
    """A CRM task for a rep, a team or customer success."""

    channel: Literal["crm_task"]
    title: Template = Field(min_length=1)
    description: Template = ""
    owner: str = Field(min_length=1)
    due_in: Duration | None = None
    kind: str = "follow_up"


class InAppSend(_SendBase):
    """A message inside the product: posted (signed, with an idempotency key) to the product's
    own endpoint (``REVOPS_IN_APP_URL``), which shows it to the user."""

    channel: Literal["in_app"]
    title: Template = Field(min_length=1)
    body: Template = Field(min_length=1)
    cta_label: str | None = None
    cta_url: str | None = Field(default=None, pattern=r"^https?://")


SendSpec = Annotated[
    EmailSend | SmsSend | WebhookSend | SlackSend | CrmTaskSend | InAppSend,
    Field(discriminator="channel"),
]


class SendStep(StrictModel):
    """``send``: one message through one channel, checked against the rules first."""

    id: StepId
    send: SendSpec


# ---------------------------------------------------------------------------------------------
# wait
# ---------------------------------------------------------------------------------------------


def _weekday(value: Any) -> Any:
    """``Tuesday``, ``tue`` and ``TUE`` all mean ``tue``."""
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS:
        return value.strip().lower()[:3]
    return value


def _weekdays(value: Any) -> Any:
    if isinstance(value, str):
        return (_weekday(value),)
    if isinstance(value, list | tuple):
        return tuple(_weekday(v) for v in value)
    return value


def _clock(value: Any) -> Any:
    """YAML 1.1 reads an unquoted 10:00 as the number 600; say so instead of guessing."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("write times as quoted 'HH:MM' strings, e.g. '10:00'")
    return value


class Until(StrictModel):
    """A moment to wait for: a local time (on given weekdays), or a time held by an event.

    ``{time: '10:00', weekday: tue}`` is the next Tuesday 10:00 in the contact's time zone;
    without ``weekday`` any day. ``{event: Webinar Registered, property: starts_at,
    before: 7d}`` is seven days before the time in the latest such event's property.
    """

    weekday: Annotated[tuple[Weekday, ...] | None, BeforeValidator(_weekdays)] = None
    time: Annotated[clock_time | None, BeforeValidator(_clock)] = None
    event: str | None = Field(default=None, min_length=1)
    property: str | None = Field(default=None, min_length=1)
    before: Duration | None = None
    after: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Until:
        local = self.time is not None
        from_event = self.event is not None or self.property is not None
        if local == from_event:
            raise ValueError("give either time (and weekday), or event and property")
        if local and (self.before is not None or self.after is not None):
            raise ValueError("before/after apply to an event's time, not to a local time")
        if from_event and (self.event is None or self.property is None):
            raise ValueError("an event time needs both event and property")
        if from_event and self.weekday is not None:
            raise ValueError("weekday applies to a local time, not to an event's time")
        return self


def _wait_shorthand(value: Any) -> Any:
    """``wait: 2d`` is ``wait: {for: 2d}``."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"for": value}
    return value


class WaitSpec(StrictModel):
    """Wait ``for`` a duration or ``until`` a moment (exactly one).

    ``then`` holds steps that run only when the wait really waited: when an ``until`` moment
    has already passed (a late webinar registration) or is unknown, they are skipped.
    """

    for_: Duration | None = Field(default=None, alias="for")
    until: Until | None = None
    then: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitSpec:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("give exactly one of: for, until")
        return self


class WaitStep(StrictModel):
    """``wait``: a durable timer (a 20-day wait survives restarts and deploys)."""

    id: StepId
    wait: Annotated[WaitSpec, BeforeValidator(_wait_shorthand)]


# ---------------------------------------------------------------------------------------------
# Steps holding nested steps
# ---------------------------------------------------------------------------------------------


class WaitForSpec(StrictModel):
    """Wait for an event (name and property filter) at most ``timeout``."""

    event: str = Field(min_length=1)
    where: dict[str, Predicate] = Field(default_factory=dict)
    timeout: Duration
    on_event: tuple[Step, ...] = ()
    on_timeout: tuple[Step, ...] = ()


class WaitForStep(StrictModel):
    """``wait_for``: go on at the first matching event, or after the timeout."""

    id: StepId
    wait_for: WaitForSpec


class BranchArm(StrictModel):
    """``{if: condition, then: [steps]}``, or ``{else: [steps]}`` as the last arm."""

    if_: Condition | None = Field(default=None, alias="if")
    then: tuple[Step, ...] = ()
    else_: tuple[Step, ...] | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _if_then_or_else(self) -> BranchArm:
        if self.else_ is not None and (self.if_ is not None or self.then):
            raise ValueError("an arm is either {if, then} or {else}")
        if self.else_ is None and self.if_ is None:
            raise ValueError("an arm needs if (with then) or else")
        return self

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps this arm runs."""
        return self.else_ if self.else_ is not None else self.then


class BranchStep(StrictModel):
    """``branch``: the first arm whose condition holds (``else`` when none does)."""

    id: StepId
    branch: tuple[BranchArm, ...] = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _else_last(cls, arms: tuple[BranchArm, ...]) -> tuple[BranchArm, ...]:
        for arm in arms[:-1]:
            if arm.else_ is not None:
                raise ValueError("else must be the last arm")
        return arms


class Variant(StrictModel):
    """One arm of an A/B(/n) split, with its share of contacts."""

    variant: str = Field(min_length=1, max_length=32)
    weight: int = Field(default=1, ge=1)
    steps: tuple[Step, ...] = ()


class SplitStep(StrictModel):
    """``split``: A/B(/n); a contact's variant is a hash of contact, journey and step."""

    id: StepId
    split: tuple[Variant, ...] = Field(min_length=2)

    @field_validator("split")
    @classmethod
    def _distinct(cls, variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        names = [v.variant for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ (got {', '.join(names)})")
        return variants


# ---------------------------------------------------------------------------------------------
# Leaves that act on the contact or end the journey
# ---------------------------------------------------------------------------------------------


class GoalStep(StrictModel):
    """``goal``: checked all along the journey; when it holds, the journey ends as converted."""

    id: StepId
    goal: Condition


class SetSpec(StrictModel):
    """Set a trait (``{trait, value}``), or ``list_add`` / ``list_remove`` a static list."""

    trait: str | None = Field(default=None, min_length=1)
    value: Any = None
    list_add: str | None = Field(default=None, min_length=1)
    list_remove: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> SetSpec:
        given = [k for k in ("trait", "list_add", "list_remove") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: trait (with value), list_add, list_remove")
        if self.trait is None and self.value is not None:
            raise ValueError("value goes with trait")
        return self


class SetStep(StrictModel):
    """``set``: asks the contact workflow to set a property or change a list."""

    id: StepId
    set: SetSpec


class EnrollStep(StrictModel):
    """``enroll``: asks the contact workflow to start another journey (rules still decide)."""

    id: StepId
    enroll: str = Field(min_length=1)


def _reason_shorthand(value: Any) -> Any:
    """``handoff: engaged after nurture`` is ``handoff: {reason: ...}``."""
    return {"reason": value} if isinstance(value, str) else value


class HandoffSpec(StrictModel):
    """Why the contact goes to sales (shown to the rep)."""

    reason: str = Field(min_length=1)


class HandoffStep(StrictModel):
    """``handoff``: hands the contact to sales (the contact workflow routes it)."""

    id: StepId
    handoff: Annotated[HandoffSpec, BeforeValidator(_reason_shorthand)]


class RecycleStep(StrictModel):
    """``recycle``: asks the contact workflow to recycle the contact for a cause of the
    recycle policy (``recycle: disengaged``: re-engage it later, by the policy's delay and
    destination)."""

    id: StepId
    recycle: str = Field(min_length=1)


class ExitStep(StrictModel):
    """``exit``: ends the journey here, with a reason."""

    id: StepId
    exit: str = Field(min_length=1)


# ---------------------------------------------------------------------------------------------
# The Step union
# ---------------------------------------------------------------------------------------------

_KIND_ERROR = "a step needs an id and exactly one of: " + ", ".join(STEP_KINDS)
_MODELS: Mapping[str, type[StrictModel]] = {
    "send": SendStep,
    "wait": WaitStep,
    "wait_for": WaitForStep,
    "branch": BranchStep,
    "split": SplitStep,
    "goal": GoalStep,
    "set": SetStep,
    "enroll": EnrollStep,
    "handoff": HandoffStep,
    "recycle": RecycleStep,
    "exit": ExitStep,
}


Step = Annotated[
    Union[  # noqa: UP007  # Tag annotations need the explicit Union form
        Annotated[SendStep, Tag("step:send")],
        Annotated[WaitStep, Tag("step:wait")],
        Annotated[WaitForStep, Tag("step:wait_for")],
        Annotated[BranchStep, Tag("step:branch")],
        Annotated[SplitStep, Tag("step:split")],
        Annotated[GoalStep, Tag("step:goal")],
        Annotated[SetStep, Tag("step:set")],
        Annotated[EnrollStep, Tag("step:enroll")],
        Annotated[HandoffStep, Tag("step:handoff")],
        Annotated[RecycleStep, Tag("step:recycle")],
        Annotated[ExitStep, Tag("step:exit")],
    ],
    one_key_discriminator(_TAG_PREFIX, _MODELS, error_type="step_kind", message=_KIND_ERROR),
]
"""Any step; the key present (``send``, ``wait`` ...) says which."""

for _model in (
    WaitSpec,
    WaitStep,
    WaitForSpec,
    WaitForStep,
    BranchArm,
    BranchStep,
    Variant,
    SplitStep,
):
    _model.model_rebuild()
