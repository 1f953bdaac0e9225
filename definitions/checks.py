"""Reference checks across definitions: every name a definition uses must exist somewhere.

Each kind validates its own shape; these checks look across kinds, where a typo would
otherwise be silently ignored at run time (a list nobody is on, a score that is always 0):

errors (``validate`` and ``deploy`` refuse them):
- lists named by conditions, journey triggers, ``set`` steps, recycle destinations and hold
  policies must be defined (``set`` steps and recycle destinations: hand-managed lists);
- scores named by conditions must be ``fit``, ``engagement`` or ``engagement_recent``;
- stages named by stage triggers must be lifecycle stages;
- ``enroll`` steps and recycle destinations must name journeys; ``recycle`` steps causes of
  the recycle policy;
- a journey must be able to enroll someone (see ``_never_enrolls``);

warnings (printed, not refused):
- traits named by conditions that no identify call, revops itself, the trait schema
  (``config/traits.yaml``) or a journey ``set`` step provides;
- template variables a message would render empty (``{{ contact.x }}`` for an unknown
  trait, ``{{ contact }}`` in channels rendered without the contact, unknown names).

Duplicate YAML keys are refused where files are read (``revops.yamlio``). Each finding names
the source (a file, or ``deployed <kind> v<n>``), the field path and a hint.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from audience.conditions import (
    AllCondition,
    AnyCondition,
    Condition,
    ListCondition,
    NotCondition,
    ScoreCondition,
    StageCondition,
    TraitCondition,
)
from audience.lists import ListKind, ListsConfig
from audience.traits import TraitSchema
from journeys.definition import JourneyDefinition, child_steps
from journeys.enrollment import EventTrigger, ListTrigger, StageTrigger
from journeys.steps import (
    BranchStep,
    CrmTaskSend,
    EmailSend,
    EnrollStep,
    GoalStep,
    RecycleStep,
    SendStep,
    SetStep,
    SlackSend,
    SmsSend,
    Step,
)
from lifecycle.recycle import RecyclePolicy
from lifecycle.stages import STAGES, Stage
from rules.policies import Policies
from scoring.model import ScoringModel

__all__ = ["SCORES", "DefinitionSet", "Finding", "Sourced", "check_definitions", "findings_about"]

SCORES = frozenset({"fit", "engagement", "engagement_recent"})
"""The scores a condition may test (``scoring.model``)."""

_MESSAGE_NAMES = frozenset({"journey", "step", "variant"})
_EMAIL_NAMES = frozenset({"confirm_url"})
"""What an email renders with besides: the double opt-in confirmation link (docs/privacy.md)."""
_PERSONAL = frozenset({"email", "first_name", "last_name", "name", "phone", "company"})
_SYNTAX = SandboxedEnvironment()


@dataclass(frozen=True)
class Finding:
    """One problem: where (source and field path), what, and what to do about it."""

    source: str
    path: str
    message: str
    hint: str = ""
    warning: bool = False

    def __str__(self) -> str:
        text = f"{self.source}: {self.path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class Sourced:
    """A definition and where it comes from (a file or a deployed version)."""

    model: Any
    source: str


@dataclass
class DefinitionSet:
    """The definitions that must agree: one of each kind, and the journeys by name."""

    lists: Sourced
    scoring: Sourced
    policies: Sourced
    recycle: Sourced
    traits: Sourced
    journeys: dict[str, Sourced] = field(default_factory=dict)


@dataclass(frozen=True)
class _Known:
    """What exists, to look names up in."""

    lists: Mapping[str, ListKind]
    journeys: frozenset[str]
    causes: frozenset[str]
    traits: frozenset[str]
    requested: frozenset[str]
    """Journeys some ``enroll`` step or recycle destination names."""


def check_definitions(definitions: DefinitionSet) -> list[Finding]:
    """Every finding in the set, errors and warnings, in a stable order."""
    known = _known(definitions)
    findings: list[Finding] = []
    lists: ListsConfig = definitions.lists.model
    for index, definition in enumerate(lists.lists):
        if definition.when is not None:
            where = f"lists[{index}] ({definition.name}).when"
            findings += _condition(definition.when, definitions.lists.source, where, known)
    findings += _scoring(definitions.scoring, known)
    findings += _policies(definitions.policies, known)
    findings += _recycle(definitions.recycle, known)
    for name in sorted(definitions.journeys):
        found = definitions.journeys[name]
        findings += _journey(found.model, found.source, known, definitions.policies.model)
    return findings


def findings_about(
    candidate: DefinitionSet, baseline: DefinitionSet, sources: set[str]
) -> list[Finding]:
    """Findings a candidate brings: every one in the candidate ``sources``, and the new ones
    elsewhere (a journey whose list the candidate lists file removes)."""
    before = {str(f) for f in check_definitions(baseline)}
    return [f for f in check_definitions(candidate) if f.source in sources or str(f) not in before]


def _known(definitions: DefinitionSet) -> _Known:
    lists: ListsConfig = definitions.lists.model
    recycle: RecyclePolicy = definitions.recycle.model
    traits: TraitSchema = definitions.traits.model
    journeys = [s.model for s in definitions.journeys.values()]
    set_traits = {
        step.set.trait
        for journey in journeys
        for step in _all_steps(journey.steps)
        if isinstance(step, SetStep) and step.set.trait is not None
    }
    enrolled = {
        step.enroll
        for journey in journeys
        for step in _all_steps(journey.steps)
        if isinstance(step, EnrollStep)
    }
    recycled = {target.journey for _, target in recycle.targets() if target.journey}
    return _Known(
        lists={d.name: d.kind for d in lists.lists},
        journeys=frozenset(j.name for j in journeys),
        causes=frozenset(recycle.causes),
        traits=traits.names() | set_traits,
        requested=frozenset(enrolled | recycled),
    )


def _all_steps(steps: tuple[Step, ...]) -> Iterator[Step]:
    for step in steps:
        yield step
        for _, nested in child_steps(step):
            yield from _all_steps(nested)


# ---- conditions --------------------------------------------------------------------------------


def _nodes(condition: Condition, path: str) -> Iterator[tuple[str, Condition]]:
    """Every node with its YAML path (``entry.all[1].not``)."""
    yield path, condition
    if isinstance(condition, AllCondition):
        for index, child in enumerate(condition.all_):
            yield from _nodes(child, f"{path}.all[{index}]")
    elif isinstance(condition, AnyCondition):
        for index, child in enumerate(condition.any_):
            yield from _nodes(child, f"{path}.any[{index}]")
    elif isinstance(condition, NotCondition):
        yield from _nodes(condition.not_, f"{path}.not")


def _condition(condition: Condition, source: str, path: str, known: _Known) -> list[Finding]:
    found: list[Finding] = []
    for where, node in _nodes(condition, path):
        if isinstance(node, ListCondition) and node.list_ not in known.lists:
            found.append(_unknown_list(source, f"{where}.list", node.list_, known))
        elif isinstance(node, ScoreCondition) and node.score not in SCORES:
            hint = _suggest(node.score, SCORES, "scores")
            found.append(Finding(source, f"{where}.score", f"unknown score {node.score!r}", hint))
        elif isinstance(node, TraitCondition):
            found += _trait(source, f"{where}.trait", node.trait, known)
    return found


def _suggest(name: str, names: Iterable[str], what: str) -> str:
    """``did you mean 'Target Industry'?``, else every name there is."""
    choices = sorted(names)
    close = get_close_matches(name, choices, n=1, cutoff=0.75)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"{what}: {', '.join(choices) or 'none'}"


def _unknown_list(source: str, path: str, name: str, known: _Known) -> Finding:
    hint = _suggest(name, known.lists, "lists.yaml defines")
    return Finding(source, path, f"unknown list {name!r}", hint)


def _trait(source: str, path: str, name: str, known: _Known) -> list[Finding]:
    if name.split(".", 1)[0] in known.traits:
        return []
    message = f"trait {name!r} is not provided by identify, revops, traits.yaml or a set step"
    close = get_close_matches(name, sorted(known.traits), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}?" if close else "declare it in config/traits.yaml"
    return [Finding(source, path, message, hint, warning=True)]


# ---- scoring, policies, recycle -----------------------------------------------------------------


def _scoring(scoring: Sourced, known: _Known) -> list[Finding]:
    model: ScoringModel = scoring.model
    found: list[Finding] = []
    for index, rule in enumerate(model.fit):
        found += _condition(rule.when, scoring.source, f"fit[{index}] ({rule.name}).when", known)
    for index, negative in enumerate(model.negative):
        if negative.when is not None:
            path = f"negative[{index}] ({negative.name}).when"
            found += _condition(negative.when, scoring.source, path, known)
    for index, segment in enumerate(model.gates.segments):
        if segment.list_ not in known.lists:
            path = f"gates.segments[{index}].list"
            found.append(_unknown_list(scoring.source, path, segment.list_, known))
    return found


def _policies(policies: Sourced, known: _Known) -> list[Finding]:
    model: Policies = policies.model
    found: list[Finding] = []
    for index, name in enumerate(model.hold.lists):
        path = f"hold.lists[{index}]"
        kind = known.lists.get(name)
        if kind is None:
            found.append(_unknown_list(policies.source, path, name, known))
        elif kind is ListKind.DYNAMIC:
            message = f"hold list {name!r} is dynamic"
            found.append(Finding(policies.source, path, message, "make it kind: static"))
    for index, stage in enumerate(model.suppression.customer_stages):
        if stage not in STAGES:
            path = f"suppression.customer_stages[{index}]"
            found.append(_unknown_stage(policies.source, path, stage))
    return found


def _unknown_stage(source: str, path: str, name: str) -> Finding:
    return Finding(source, path, f"unknown stage {name!r}", _suggest(name, STAGES, "stages"))


def _recycle(recycle: Sourced, known: _Known) -> list[Finding]:
    model: RecyclePolicy = recycle.model
    found: list[Finding] = []
    for path, target in model.targets():
        if target.list_ is not None:
            found += _hand_managed(recycle.source, f"{path}.list", target.list_, known)
        elif target.journey is not None and target.journey not in known.journeys:
            hint = _suggest(target.journey, known.journeys, "journeys")
            message = f"unknown journey {target.journey!r}"
            found.append(Finding(recycle.source, f"{path}.journey", message, hint))
    return found


def _hand_managed(source: str, path: str, name: str, known: _Known) -> list[Finding]:
    """A list a step or a policy puts contacts on: defined, and not dynamic."""
    kind = known.lists.get(name)
    if kind is None:
        return [_unknown_list(source, path, name, known)]
    if kind is ListKind.DYNAMIC:
        message = f"{name!r} is a dynamic list: its members follow its condition"
        return [Finding(source, path, message, "name a static list, or add one to lists.yaml")]
    return []


# ---- journeys ------------------------------------------------------------------------------------


def _journey(
    journey: JourneyDefinition, source: str, known: _Known, policies: Policies
) -> list[Finding]:
    found = _enrollment(journey, source, known, policies)
    for path, step in _steps(journey.steps, "steps"):
        found += _step(step, source, path, known)
    return found


def _enrollment(
    journey: JourneyDefinition, source: str, known: _Known, policies: Policies
) -> list[Finding]:
    found: list[Finding] = []
    trigger = journey.trigger
    if isinstance(trigger, ListTrigger) and trigger.list not in known.lists:
        found.append(_unknown_list(source, "trigger.list", trigger.list, known))
    if isinstance(trigger, StageTrigger) and trigger.stage not in STAGES:
        found.append(_unknown_stage(source, "trigger.stage", trigger.stage))
    for key in ("entry", "exit"):
        condition = getattr(journey, key)
        if condition is not None:
            found += _condition(condition, source, key, known)
    never = _never_enrolls(journey, known, policies)
    if never is not None:
        found.append(Finding(source, "trigger", f"journey {journey.name!r} {never[0]}", never[1]))
    return found


def _never_enrolls(
    journey: JourneyDefinition, known: _Known, policies: Policies
) -> tuple[str, str] | None:
    """Why no contact can ever enter ``journey`` (and what to do), or None."""
    trigger = journey.trigger
    if trigger is None:
        if journey.name in known.requested:
            return None
        return (
            "can never enroll: it has no trigger and no enroll step or recycle policy names it",
            "give it a trigger, or name it in an enroll step or config/recycle.yaml",
        )
    if isinstance(trigger, ListTrigger):
        kind = known.lists.get(trigger.list)
        suppressed = kind is ListKind.SUPPRESSION and journey.marketing
        if suppressed or trigger.list in policies.hold.lists:
            return (
                f"can never enroll: members of {trigger.list!r} are kept out of it",
                "trigger on another list",
            )
    if isinstance(trigger, EventTrigger):
        policy = policies.hand_raiser
        steps_aside = journey.category in policy.suppress_categories
        if trigger.event in (policy.events or []) and steps_aside:
            return (
                f"can never enroll: {trigger.event!r} is a hand-raiser and "
                f"{journey.category!r} journeys step aside for sales",
                "change the category or the trigger",
            )
    if isinstance(trigger, StageTrigger) and trigger.stage in STAGES:
        return _stage_contradiction(journey, Stage(trigger.stage), policies)
    return None


def _stage_contradiction(
    journey: JourneyDefinition, stage: Stage, policies: Policies
) -> tuple[str, str] | None:
    """A stage trigger the journey's own entry, exit or customer policy always refuses."""
    if journey.acquisition and stage.value in policies.suppression.customer_stages:
        return (
            f"can never enroll: customers ({stage.value}) are kept out of acquisition journeys",
            "set acquisition: false",
        )
    entry = _stage_tests(journey.entry, conjunctive=True)
    if any(not test.stage.test(stage.value, STAGES) for test in entry):
        return (
            f"can never enroll: its trigger is stage {stage.value} and its entry refuses it",
            "fix the entry condition or the trigger",
        )
    exit_tests = _stage_tests(journey.exit, conjunctive=False)
    if any(test.stage.test(stage.value, STAGES) for test in exit_tests):
        return (
            f"can never enroll: its exit already holds at stage {stage.value}",
            "fix the exit condition or the trigger",
        )
    return None


def _stage_tests(condition: Condition | None, *, conjunctive: bool) -> list[StageCondition]:
    """Stage tests that alone decide ``condition``: itself, or direct children of an ``all``
    (entry: every one must hold) or an ``any`` (exit: one holding is enough)."""
    if isinstance(condition, StageCondition):
        return [condition]
    group = AllCondition if conjunctive else AnyCondition
    if isinstance(condition, group):
        children = condition.all_ if isinstance(condition, AllCondition) else condition.any_
        return [c for c in children if isinstance(c, StageCondition)]
    return []


def _steps(steps: tuple[Step, ...], path: str) -> Iterator[tuple[str, Step]]:
    """Every step with its YAML path (``steps[3] (d20).branch[1].then[0] (x)``)."""
    for index, step in enumerate(steps):
        here = f"{path}[{index}] ({step.id})"
        yield here, step
        for sub, nested in child_steps(step):
            yield from _steps(nested, f"{here}.{sub}")


def _step(step: Step, source: str, path: str, known: _Known) -> list[Finding]:
    if isinstance(step, BranchStep):
        found: list[Finding] = []
        for index, arm in enumerate(step.branch):
            if arm.if_ is not None:
                found += _condition(arm.if_, source, f"{path}.branch[{index}].if", known)
        return found
    if isinstance(step, GoalStep):
        return _condition(step.goal, source, f"{path}.goal", known)
    if isinstance(step, SetStep):
        name = step.set.list_add or step.set.list_remove
        key = "list_add" if step.set.list_add else "list_remove"
        return _hand_managed(source, f"{path}.set.{key}", name, known) if name else []
    if isinstance(step, EnrollStep) and step.enroll not in known.journeys:
        hint = _suggest(step.enroll, known.journeys, "journeys")
        return [Finding(source, f"{path}.enroll", f"unknown journey {step.enroll!r}", hint)]
    if isinstance(step, RecycleStep) and step.recycle not in known.causes:
        hint = _suggest(step.recycle, known.causes, "config/recycle.yaml causes")
        message = f"unknown recycle cause {step.recycle!r}"
        return [Finding(source, f"{path}.recycle", message, hint)]
    if isinstance(step, SendStep):
        return _templates(step, source, path, known)
    return []


def _templates(step: SendStep, source: str, path: str, known: _Known) -> list[Finding]:
    """Warn about variables a template would render empty."""
    spec = step.send
    with_contact = isinstance(spec, EmailSend | SmsSend)
    fields: dict[str, str | None] = {}
    if isinstance(spec, EmailSend):
        fields = {"subject": spec.subject, "body": spec.body, "html": spec.html}
    elif isinstance(spec, SmsSend | SlackSend):
        fields = {"text": spec.text}
    elif isinstance(spec, CrmTaskSend):
        fields = {"title": spec.title, "description": spec.description}
    found: list[Finding] = []
    for key, text in fields.items():
        if text:
            where = f"{path}.send.{key}"
            found += _variables(
                text,
                source,
                where,
                known,
                with_contact=with_contact,
                email=isinstance(spec, EmailSend),
            )
    return found


def _variables(
    text: str, source: str, path: str, known: _Known, *, with_contact: bool, email: bool = False
) -> list[Finding]:
    tree = _SYNTAX.parse(text)
    found: list[Finding] = []
    offered = _MESSAGE_NAMES | ({"contact"} if with_contact else set())
    offered |= _EMAIL_NAMES if email else set()
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in offered:
            hint = f"this channel renders with: {', '.join(sorted(offered))}"
            message = f"template variable {name!r} is not provided (it renders empty)"
            found.append(Finding(source, path, message, hint, warning=True))
    if with_contact:
        for attribute in sorted(_contact_attributes(tree)):
            if attribute not in known.traits and attribute not in _PERSONAL:
                message = f"template variable 'contact.{attribute}' is not a known trait"
                hint = _suggest(attribute, known.traits | _PERSONAL, "known traits")
                found.append(Finding(source, path, message, hint, warning=True))
    return found


def _contact_attributes(tree: nodes.Template) -> set[str]:
    found = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "contact":
            found.add(node.attr)
    for item in tree.find_all(nodes.Getitem):
        target, key = item.node, item.arg
        named = isinstance(target, nodes.Name) and target.name == "contact"
        if named and isinstance(key, nodes.Const) and isinstance(key.value, str):
            found.add(key.value)
    return found
