"""The journeys one ruleset compiles: every version, its priority resolved, its groups checked.

A running enrollment is judged by the version it pinned (its exit criteria, ``on_preempt``);
a new enrollment always takes the latest version. Priorities left out come from the policies'
category defaults. Two journeys of one exclusivity group with one priority are refused here,
when compiling, because pre-emption between them would be a coin toss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audience.conditions import EqualityKind, Form, operand_forms
from journeys.enrollment import EventTrigger, JourneyEnrollment
from revops.errors import ConfigError
from rules.policies import Policies

__all__ = ["Catalog", "CompiledJourney", "FieldKey"]

FieldKey = tuple[str, EqualityKind, str]
"""(event property, operand kind, form type): what one occurrence fact field holds."""


def field_key(key: str, kind: EqualityKind, form: Form) -> FieldKey:
    """Where a form of property ``key`` goes: durable_rules compares a number constant with
    numeric text and booleans alike, so each field holds one type only (bool, float or str)."""
    return key, kind, type(form).__name__


@dataclass(frozen=True)
class CompiledJourney:
    """One journey version with its priority resolved from the policies when left out."""

    spec: JourneyEnrollment
    priority: int

    @property
    def name(self) -> str:
        """The journey's name (its key everywhere)."""
        return self.spec.name

    @property
    def group(self) -> str:
        """Exclusivity group, '' for none (durable_rules compares strings, not nulls)."""
        return self.spec.exclusivity_group or ""

    @property
    def category(self) -> str:
        """Category, '' for none."""
        return self.spec.category or ""


class Catalog:
    """All versions by (name, version), the latest by name, and the event properties filtered.

    ``property_fields`` names the occurrence fact's fields for the properties the triggers
    filter on: ``p0``, ``p1`` ... (any property name is safe then), one per kind of operand the
    property is compared with and per type of form (``field_key``): each holds the event's
    value in the form that kind compares (``value_form``), when it has that type.
    """

    def __init__(self, specs: Sequence[JourneyEnrollment], policies: Policies) -> None:
        """Resolve priorities and check groups; invalid definitions raise ConfigError."""
        self.versions: dict[tuple[str, int], CompiledJourney] = {}
        for spec in specs:
            key = (spec.name, spec.version)
            if key in self.versions:
                raise ConfigError(f"journey {spec.name!r}: version {spec.version} defined twice")
            self.versions[key] = CompiledJourney(spec, _resolve_priority(spec, policies))
        self.latest: dict[str, CompiledJourney] = {}
        for journey in self.versions.values():
            current = self.latest.get(journey.name)
            if current is None or journey.spec.version > current.spec.version:
                self.latest[journey.name] = journey
        _check_groups(self.latest.values())
        self.property_fields = self._property_fields()
        self.filters = tuple(sorted({(key, kind) for key, kind, _ in self.property_fields}))
        """(property, operand kind) pairs the triggers compare, each once."""

    def definition(self, name: str, version: int | None = None) -> CompiledJourney | None:
        """The pinned version when known, else the latest, else None (an unknown journey)."""
        if version is not None and (name, version) in self.versions:
            return self.versions[(name, version)]
        return self.latest.get(name)

    def _property_fields(self) -> dict[FieldKey, str]:
        """A field per form the latest versions' trigger filters compare with."""
        used: set[FieldKey] = set()
        for journey in self.latest.values():
            if isinstance(journey.spec.trigger, EventTrigger):
                for key, value in journey.spec.trigger.properties.items():
                    kind, forms = operand_forms(value)
                    used |= {field_key(key, kind, form) for form in forms}
        return {field: f"p{i}" for i, field in enumerate(sorted(used))}


def _resolve_priority(spec: JourneyEnrollment, policies: Policies) -> int:
    """The journey's priority: its own, else its category's default from the policies."""
    if spec.priority is not None:
        return spec.priority
    if spec.category in policies.priorities:
        return policies.priorities[spec.category]
    known = ", ".join(sorted(policies.priorities)) or "none"
    raise ConfigError(
        f"journey {spec.name!r} (version {spec.version}): priority: missing; give a number "
        f"or a category with a default priority ({known})"
    )


def _check_groups(journeys: Iterable[CompiledJourney]) -> None:
    """Two journeys of one group with equal priority would make pre-emption a coin toss."""
    seen: dict[tuple[str, int], str] = {}
    for journey in sorted(journeys, key=lambda j: j.name):
        if not journey.group:
            continue
        other = seen.setdefault((journey.group, journey.priority), journey.name)
        if other != journey.name:
            raise ConfigError(
                f"journey {journey.name!r}: priority: {journey.priority} equals {other!r} in "
                f"exclusivity group {journey.group!r}; priorities in a group must differ"
            )
