"""Data hygiene: which records lack the fields routing and scoring need (seed 000, governance).

A contact without a country cannot be routed by territory, one without a company size or an
industry scores low for the wrong reason. The fields come from the active definitions: every
trait a fit or fit-negative rule of the scoring model reads, and routing's inputs (territory,
account domain, industry). A field with alternatives (``country`` or ``region``) is present
when any of them is. ``email_domain`` is present when the contact has an email address (the
workflow derives it). Pure: callers pass the contacts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from audience.conditions import AllCondition, AnyCondition, Condition, NotCondition, TraitCondition
from scoring.model import ScoringModel

__all__ = [
    "ROUTING_FIELDS",
    "HygieneLine",
    "HygieneReport",
    "HygieneSubject",
    "Requirement",
    "hygiene_report",
    "requirements_of",
]


@dataclass(frozen=True)
class Requirement:
    """A field a process needs: its name, the traits that satisfy it, and who needs it."""

    name: str
    traits: tuple[str, ...]
    needed_by: tuple[str, ...]


ROUTING_FIELDS: tuple[Requirement, ...] = (
    Requirement("country", ("country", "region"), ("routing",)),
    Requirement("company_domain", ("company_domain", "account_domain"), ("routing",)),
    Requirement("industry", ("industry",), ("routing",)),
)
"""Routing's inputs: territory, the named-account domain, the vertical."""


@dataclass(frozen=True)
class HygieneSubject:
    """One contact as the report sees it (its user id, stage, traits, whether it has email)."""

    user_id: str
    stage: str | None
    traits: Mapping[str, Any]
    has_email: bool


class HygieneLine(BaseModel):
    """A field: how many contacts lack it, and who needs it."""

    field: str
    needed_by: list[str]
    missing: int
    share: float


class HygieneRecord(BaseModel):
    """A contact lacking at least one field."""

    user_id: str
    stage: str | None
    missing: list[str]


class HygieneReport(BaseModel):
    """Every field with its gaps, then the records (most gaps first, up to ``limit``)."""

    generated_at: datetime
    contacts: int
    incomplete: int
    fields: list[HygieneLine]
    records: list[HygieneRecord]


def _traits_read(condition: Condition | None) -> Iterator[str]:
    if condition is None:
        return
    if isinstance(condition, AllCondition):
        for child in condition.all_:
            yield from _traits_read(child)
    elif isinstance(condition, AnyCondition):
        for child in condition.any_:
            yield from _traits_read(child)
    elif isinstance(condition, NotCondition):
        yield from _traits_read(condition.not_)
    elif isinstance(condition, TraitCondition):
        yield condition.trait.split(".", 1)[0]


def _groups(condition: Condition | None) -> Iterator[tuple[str, ...]]:
    """The trait groups a condition needs: each ``any`` is one group of alternatives."""
    if isinstance(condition, AllCondition):
        for child in condition.all_:
            yield from _groups(child)
    elif condition is not None:
        traits = tuple(dict.fromkeys(_traits_read(condition)))
        if traits:
            yield traits


def requirements_of(model: ScoringModel) -> list[Requirement]:
    """Routing's fields, then the traits the model's fit (and fit-negative) rules read; traits
    of one ``any`` are alternatives (a title or a seniority)."""
    found: list[Requirement] = list(ROUTING_FIELDS)
    conditions: list[Condition | None] = [rule.when for rule in model.fit]
    conditions += [rule.when for rule in model.negative if rule.applies_to == "fit"]
    for condition in conditions:
        for group in _groups(condition):
            _add(found, group)
    return found


def _add(found: list[Requirement], group: tuple[str, ...]) -> None:
    """Mark an existing requirement as scoring's too, or add the group as a new one."""
    for index, known in enumerate(found):
        if set(known.traits) & set(group) and (
            set(group) >= set(known.traits) or set(known.traits) >= set(group)
        ):
            if "scoring" not in known.needed_by:
                needed = (*known.needed_by, "scoring")
                found[index] = Requirement(known.name, known.traits, needed)
            return
    found.append(Requirement(" or ".join(group), group, ("scoring",)))


def _present(subject: HygieneSubject, requirement: Requirement) -> bool:
    if "email_domain" in requirement.traits and subject.has_email:
        return True
    return any(subject.traits.get(t) not in (None, "", []) for t in requirement.traits)


def hygiene_report(
    subjects: Iterable[HygieneSubject],
    requirements: list[Requirement],
    now: datetime,
    *,
    limit: int = 50,
) -> HygieneReport:
    """Count each field's gaps and list the records with the most gaps first."""
    gaps: Counter[str] = Counter()
    records: list[HygieneRecord] = []
    total = 0
    for subject in subjects:
        total += 1
        missing = [r.name for r in requirements if not _present(subject, r)]
        gaps.update(missing)
        if missing:
            records.append(
                HygieneRecord(user_id=subject.user_id, stage=subject.stage, missing=missing)
            )
    records.sort(key=lambda r: (-len(r.missing), r.user_id))
    lines = [
        HygieneLine(
            field=r.name,
            needed_by=list(r.needed_by),
            missing=gaps[r.name],
            share=round(gaps[r.name] / total, 4) if total else 0.0,
        )
        for r in requirements
    ]
    return HygieneReport(
        generated_at=now,
        contacts=total,
        incomplete=len(records),
        fields=lines,
        records=records[:limit],
    )
