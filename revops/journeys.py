"""Journey definitions: the enrollment part plus the steps, read from YAML and validated.

A journey definition is exactly a ``JourneyEnrollment`` (the same YAML keys: trigger, entry,
exit, priority, exclusivity group, re-enrollment ...) with ``steps`` beside it. The rules
engine compiles only the enrollment part (``definition.enrollment``); the journey workflow
interprets the steps of the version an enrollment pinned.

Definitions live as YAML files under ``journeys/`` (code-reviewed) and, once deployed, as
versions of kind ``journey`` in the definition registry (``store.registry``), named by the
journey's name. The registry numbers versions; a ``version`` key in a file only matters for
files that were never deployed. ``active_journeys`` merges both: a deployed version wins over
the file of the same name.

Errors are ConfigErrors with one line per problem naming the file, the step (by position and
id) and the field, e.g. ``journeys/x.yaml: steps[3] (d5-case-study).send.email.subject: ...``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, ValidationError, model_validator

from revops.conditions import Duration
from revops.enrollment import JourneyEnrollment
from revops.errors import ConfigError
from revops.journey_steps import (
    BranchStep,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
)
from revops.yamlio import read_yaml

__all__ = [
    "JOURNEY_KIND",
    "DeployedJourney",
    "JourneyDefinition",
    "active_journeys",
    "child_steps",
    "deployable_body",
    "from_registry",
    "iter_steps",
    "journey_json_schema",
    "load_journey",
    "load_journey_library",
    "parse_journey",
]

JOURNEY_KIND = "journey"
"""The registry kind journeys are deployed under (one name per journey)."""

_ONE_MINUTE = timedelta(minutes=1)
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


class JourneyDefinition(JourneyEnrollment):
    """One journey version: its enrollment settings and its steps.

    ``send_timeout`` bounds one attempt of a send (then Temporal retries it, with the same
    idempotency key); ``time_zone_trait`` is the trait holding the contact's IANA time zone.
    """

    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)
    send_timeout: Duration = _ONE_MINUTE

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


def load_journey(path: Path) -> JourneyDefinition:
    """Read and validate one journey file."""
    return parse_journey(read_yaml(path), str(path))


def load_journey_library(directory: Path) -> list[JourneyDefinition]:
    """Every ``*.yaml`` journey in ``directory``, by file name; all errors reported at once."""
    journeys: list[JourneyDefinition] = []
    errors: list[str] = []
    names: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            journey = load_journey(path)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        if journey.name in names:
            errors.append(
                f"{path}: name: {journey.name!r} is also the name in {names[journey.name]}"
            )
            continue
        names[journey.name] = path
        journeys.append(journey)
    if errors:
        raise ConfigError("\n".join(errors))
    return journeys


def deployable_body(data: Mapping[str, Any]) -> dict[str, Any]:
    """The body the registry stores: the YAML mapping without ``version`` (it numbers them)."""
    return {key: value for key, value in data.items() if key != "version"}


class DeployedJourney(Protocol):
    """What ``active_journeys`` needs of a registry row (``store.registry.DefinitionRow``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def body(self) -> dict[str, Any]: ...


def from_registry(row: DeployedJourney) -> JourneyDefinition:
    """A deployed version as a definition whose ``version`` is the registry's number."""
    return parse_journey({**row.body, "version": row.version}, f"deployed journey {row.name!r}")


def active_journeys(
    deployed: Iterable[DeployedJourney], library: Path | None = None
) -> list[JourneyDefinition]:
    """The journeys new enrollments get: deployed versions, else the library file of that name.

    ``deployed`` is ``Registry(store).active_all("journey")``; ``library`` the journeys
    directory (files never deployed still enroll, at their own ``version``, default 1).
    The rules engine compiles ``[d.enrollment for d in active_journeys(...)]``.
    """
    found: dict[str, JourneyDefinition] = {}
    if library is not None and library.is_dir():
        found = {j.name: j for j in load_journey_library(library)}
    for row in deployed:
        found[row.name] = from_registry(row)
    return [found[name] for name in sorted(found)]


def journey_json_schema() -> dict[str, Any]:
    """JSON Schema of a journey file (``journeys/schema.json``), for editors and CI."""
    schema = JourneyDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "revops journey"
    return schema
