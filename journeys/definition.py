"""Journey definitions: the enrollment part plus the steps, read from YAML and validated.

A journey definition is exactly a ``JourneyEnrollment`` (the same YAML keys: trigger, entry,
exit, priority, exclusivity group, re-enrollment ...) with ``steps`` beside it. The rules
engine compiles only the enrollment part (``definition.enrollment``); the journey workflow
interprets the steps of the version an enrollment pinned.

Definitions live as YAML files under ``config/journeys/`` (code-reviewed) and, once deployed, as
versions of kind ``journey`` in the definition registry; the definitions service
(``definitions``) reads both, a deployed version winning over the file of the same name. This
module only validates.

Errors are ConfigErrors with one line per problem naming the file, the step (by position and
id) and the field, e.g. ``config/journeys/x.yaml: steps[3] (d5-case-study).send.email.subject:``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import Field, ValidationError, model_validator

from journeys.enrollment import JourneyEnrollment
from journeys.steps import (
    BranchStep,
    LatePolicy,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
)
from revops.durations import Duration
from revops.errors import ConfigError
from revops.strict import StrictModel

__all__ = [
    "EmailTracking",
    "Holdout",
    "JourneyDefinition",
    "Lateness",
    "Rollout",
    "child_steps",
    "iter_steps",
    "journey_json_schema",
    "parse_journey",
]

_ONE_MINUTE = timedelta(minutes=1)
_ONE_DAY = timedelta(days=1)
_TAG_PREFIXES = ("step:", "cond:")


def child_steps(step: Step) -> list[tuple[str, tuple[Step, ...]]]:
    """The nested step lists of a step, each with the YAML path that leads to it."""
    if isinstance(step, BranchStep):
        return [
            (f"branch[{i}].{'else' if arm.else_ is not None else 'then'}", arm.steps)
            for i, arm in enumerate(step.branch)
        ]
    if isinstance(step, SplitStep):
        return [(f"split[{i}].steps", v.steps) for i, v in enumerate(step.split)]
    if isinstance(step, WaitForStep):
        spec = step.wait_for
        return [("wait_for.on_event", spec.on_event), ("wait_for.on_timeout", spec.on_timeout)]
    if isinstance(step, WaitStep) and step.wait.then:
        return [("wait.then", step.wait.then)]
    return []


def iter_steps(steps: Sequence[Step]) -> Iterator[Step]:
    """Every step of a tree, depth first in document order."""
    for step in steps:
        yield step
        for _, nested in child_steps(step):
            yield from iter_steps(nested)


class Lateness(StrictModel):
    """When a step is stale, and what a stale send does by default (a step's ``if_late``
    overrides it): a send more than ``after`` past its moment (a worker down for days, a
    journey paused) is stale. Marketing sends are left out by default, transactional ones
    (receipts, join links) go late."""

    after: Duration = _ONE_DAY
    marketing: LatePolicy = "skip"
    transactional: LatePolicy = "send_late"


class EmailTracking(StrictModel):
    """Engagement tracking of a journey's marketing email (transactional mail is never
    tracked): an open pixel, and links through the gateway's signed redirect."""

    opens: bool = True
    clicks: bool = True


class Holdout(StrictModel):
    """Incrementality: ``percent`` of the journey's would-be enrollees (chosen by a hash of the
    contact, so the same contact is always in or out) are held out: recorded, never sent to,
    and watched for the journey's goals for ``window``, so ``journeys stats`` can compare
    goal conversion of the enrolled with the held out."""

    percent: float = Field(gt=0, lt=100)
    window: Duration = timedelta(days=30)

    @model_validator(mode="after")
    def _positive_window(self) -> Holdout:
        if self.window <= timedelta(0):
            raise ValueError("holdout.window must be longer than zero")
        return self


class Rollout(StrictModel):
    """A staged rollout of this version: ``percent`` of new enrollments (by a hash of the
    contact) get it, the rest the version deployed before it; when its sends fail more often
    than ``max_error_rate`` (once ``min_sends`` were tried) it is rolled back automatically."""

    percent: float = Field(gt=0, le=100)
    max_error_rate: float = Field(default=0.1, gt=0, lt=1)
    min_sends: int = Field(default=20, ge=1)


class JourneyDefinition(JourneyEnrollment):
    """One journey version: its enrollment settings and its steps.

    ``send_timeout`` bounds one attempt of a send (then Temporal retries it, with the same
    idempotency key); ``late`` says what stale sends do; ``tracking`` switches engagement
    tracking of its marketing email; ``holdout`` holds a share of enrollees out (measured,
    never sent to).
    """

    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)
    send_timeout: Duration = _ONE_MINUTE
    late: Lateness = Field(default_factory=Lateness)
    tracking: EmailTracking = Field(default_factory=EmailTracking)
    holdout: Holdout | None = None
    rollout: Rollout | None = None

    @model_validator(mode="after")
    def _sound(self) -> JourneyDefinition:
        seen: set[str] = set()
        for step in iter_steps(self.steps):
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; step ids must be unique")
            seen.add(step.id)
        if self.priority is None and self.category is None:
            raise ValueError("give a priority, or a category with a default priority")
        return self

    @property
    def enrollment(self) -> JourneyEnrollment:
        """The enrollment part, what the rules engine compiles."""
        return JourneyEnrollment.model_validate(
            {key: getattr(self, key) for key in JourneyEnrollment.model_fields}
        )


def _step_label(data: Any, loc: Sequence[int | str]) -> dict[int, str]:
    """For each position in ``loc`` that is a step, its id (read from the raw YAML)."""
    labels: dict[int, str] = {}
    current: Any = data
    for index, part in enumerate(loc):
        if isinstance(part, str) and part.startswith(_TAG_PREFIXES):
            continue
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
            if isinstance(current, Mapping) and isinstance(current.get("id"), str):
                labels[index] = current["id"]
        else:
            break
    return labels


def _path(data: Any, loc: Sequence[int | str]) -> str:
    """``('steps', 3, 'step:send', 'send', 'email', 'subject')`` as
    ``steps[3] (welcome).send.email.subject``."""
    labels = _step_label(data, loc)
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            if index in labels:
                text += f" ({labels[index]})"
        elif not part.startswith(_TAG_PREFIXES):
            text += f".{part}" if text else part
    return text or "(top)"


def _message(error: Mapping[str, Any]) -> str:
    kind, given = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = "email, sms, webhook, slack, crm_task"
        if isinstance(given, Mapping) and "channel" in given:
            return f"channel must be one of {tags} (got {given['channel']!r})"
        return f"needs a channel: one of {tags}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("step_kind", "condition_kind") and isinstance(given, Mapping):
        return f"{error['msg']} (got keys: {', '.join(map(str, given)) or 'none'})"
    if given is None or isinstance(given, str | int | float | bool):
        return f"{error['msg']} (got {given!r})"
    return str(error["msg"])


def _consequence(error: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> bool:
    """ "List too short" because its items failed: the item errors already say it."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _config_error(exc: ValidationError, data: Any, source: str) -> ConfigError:
    lines: list[str] = []
    errors = exc.errors()
    for error in errors:
        if _consequence(error, errors):
            continue
        line = f"{source}: {_path(data, error['loc'])}: {_message(error)}"
        if line not in lines:
            lines.append(line)
    return ConfigError("\n".join(lines))


def parse_journey(data: Any, source: str = "<journey>") -> JourneyDefinition:
    """Validate a journey mapping; ConfigError names ``source``, the step and the field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    try:
        return JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, data, source) from exc


def journey_json_schema() -> dict[str, Any]:
    """JSON Schema of a journey file (``config/journeys/schema.json``), for editors and CI."""
    schema = JourneyDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "revops journey"
    return schema
