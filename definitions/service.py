"""The definitions service: every kind, deployed version first, shipped file otherwise, cached.

One ``Definitions`` per process (the worker builds one for all its activities; the gateway and
each CLI command theirs) answers every question about the active definitions:

- ``get(ROUTING)`` the validated model of a kind (typed by its ``Kind`` key), ``active(kind)``
  the same with its body and source;
- ``journeys()`` the active journey definitions by name (the catalog the rules compile;
  ``catalog()`` adds where each comes from);
- ``contact_bundle()`` the contact workflow's ``ContactConfig``, checked on every call: a
  contact pins what it loads until the next deploy signal, so a stale answer here would outlive
  the deploy, not just trail it;
- ``memo(build)`` a value derived from them (a compiled rules engine), rebuilt when they change;
- ``check(kind, candidate)`` whether a candidate fits the other active definitions (deploy),
  the reference checks of ``definitions.checks`` included.

Everything is cached on one key (``definitions.cache``): answers trail a deploy by at most
``recheck_seconds``, except the contact bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from audience.demand_states import DemandStatesConfig
from audience.lists import ListsConfig, check_demand_state_names
from contacts.contract import ContactConfig
from definitions.cache import Memo, Stamps
from definitions.checks import DefinitionSet, Finding, Sourced, findings_about
from definitions.journeys import journey_catalog
from definitions.kinds import (
    ACCOUNTS,
    BUNDLE,
    CRM,
    DEMAND_STATES,
    JOURNEY,
    KINDS,
    LIFECYCLE,
    LISTS,
    POLICIES,
    RECYCLE,
    SCORING,
    TRAITS,
    Active,
    Kind,
    read_active,
)
from journeys.definition import JourneyDefinition
from revops.errors import ConfigError
from revops.settings import Settings
from rules import compile_rules
from rules.policies import Policies, with_hand_raisers
from scoring.model import ScoringModel
from store.registry import Registry
from store.repo import Store

__all__ = [
    "DEFAULT_NAME",
    "Definitions",
    "check_bundle",
    "check_references",
    "check_rules",
    "shipped_set",
]

M = TypeVar("M", bound=BaseModel)
N = TypeVar("N", bound=BaseModel)
T = TypeVar("T")

DEFAULT_NAME = "default"
"""Every kind but journeys has one definition, deployed under this name."""


class Definitions:
    """The active definitions of a registry and its shipped files."""

    def __init__(
        self,
        registry: Registry,
        config_dir: Path,
        journeys_dir: Path | None = None,
        *,
        recheck_seconds: float = 1.0,
    ) -> None:
        self.registry = registry
        self.config_dir = config_dir
        self.journeys_dir = journeys_dir
        folders = [config_dir] if journeys_dir is None else [config_dir, journeys_dir]
        self._stamps = Stamps(registry, folders, recheck_seconds)
        self._kinds: dict[str, Memo[Active[Any]]] = {
            name: self.memo(self._reader(kind)) for name, kind in KINDS.items() if kind != JOURNEY
        }
        self._journeys = self.memo(self._read_journeys)
        self._bundle = Memo(self._stamps, self._build_bundle, fresh=True)

    @classmethod
    def of(cls, store: Store, settings: Settings) -> Definitions:
        """The service for a store and the settings' config and journeys directories."""
        return cls(Registry(store), settings.config_dir, settings.journeys_dir)

    def memo(self, build: Callable[[], T]) -> Memo[T]:
        """A value derived from the definitions, rebuilt when they change."""
        return Memo(self._stamps, build)

    def get(self, kind: Kind[M]) -> M:
        """The active ``kind``: deployed version, else the shipped file; validated."""
        return self.active(kind).model

    def active(self, kind: Kind[M]) -> Active[M]:
        """The active ``kind`` with its body and where it comes from."""
        if kind == JOURNEY:
            raise ConfigError("journeys have one definition per name: use journeys()")
        return cast(Active[M], self._kinds[kind.name].get())

    def journeys(self) -> dict[str, JourneyDefinition]:
        """The journeys new enrollments get, by name (each with its version)."""
        return {name: journey.model for name, journey in self._journeys.get().items()}

    def catalog(self) -> dict[str, Active[JourneyDefinition]]:
        """The same journeys with their bodies and where each comes from."""
        return self._journeys.get()

    def contact_bundle(self) -> ContactConfig:
        """The contact workflow's definitions, checked against the store on every call."""
        return self._bundle.get()

    def file_of(self, kind: Kind[Any]) -> Path:
        """Where ``kind`` is shipped."""
        return self.config_dir / kind.filename

    def check(self, kind: Kind[M], candidate: M, source: str = "candidate") -> None:
        """ConfigError when ``candidate`` (read from ``source``) would not work with the other
        active definitions: bundle and rules checks, then the reference checks."""

        def pick(other: Kind[N]) -> N:
            return cast(N, candidate) if other == kind else self.get(other)

        if kind in BUNDLE:
            check_bundle(pick(SCORING), pick(LISTS), pick(DEMAND_STATES))
        if kind in (POLICIES, JOURNEY, SCORING):
            journeys = self.journeys()
            if isinstance(candidate, JourneyDefinition):
                journeys = {**journeys, candidate.name: candidate}
            check_rules(journeys.values(), pick(POLICIES), pick(SCORING).hand_raisers)
        baseline = self.as_set()
        errors = check_references(baseline, kind, candidate, source)
        if errors:
            raise ConfigError("\n".join(str(f) for f in errors))

    def as_set(self) -> DefinitionSet:
        """The active definitions the reference checks look across."""

        def sourced(kind: Kind[Any]) -> Sourced:
            found = self.active(kind)
            return Sourced(found.model, found.source)

        journeys = {name: Sourced(j.model, j.source) for name, j in self.catalog().items()}
        return _definition_set(sourced, journeys)

    def _reader(self, kind: Kind[M]) -> Callable[[], Active[M]]:
        def read() -> Active[M]:
            row = self.registry.active(kind.name, DEFAULT_NAME)
            if row is None:
                return read_active(kind, self.file_of(kind))
            source = f"deployed {kind.name} v{row.version}"
            return Active(kind.parse(row.body, source), row.body, source, row.version)

        return read

    def _read_journeys(self) -> dict[str, Active[JourneyDefinition]]:
        return journey_catalog(self.registry.active_all(JOURNEY.name), self.journeys_dir)

    def _build_bundle(self) -> ContactConfig:
        lifecycle, scoring = self.active(LIFECYCLE), self.active(SCORING)
        lists, states = self.active(LISTS), self.active(DEMAND_STATES)
        check_bundle(scoring.model, lists.model, states.model)
        bodies = {kind.name: self.active(kind).body for kind in BUNDLE}
        crm = self.get(CRM)
        if crm.enabled:  # a contact pushes to the CRM: its threshold is part of the bundle
            bodies[CRM.name] = {"score_change_threshold": crm.score_change_threshold}
        digest = hashlib.sha256(json.dumps(bodies, sort_keys=True, default=str).encode())
        return ContactConfig(
            crm_score_threshold=crm.score_change_threshold if crm.enabled else None,
            version=digest.hexdigest()[:12],
            lifecycle=lifecycle.model,
            scoring=scoring.model,
            lists=lists.model,
            demand_states=states.model,
            recycle=self.get(RECYCLE),
            accounts=self.get(ACCOUNTS),
        )


def _definition_set(
    sourced: Callable[[Kind[Any]], Sourced], journeys: dict[str, Sourced]
) -> DefinitionSet:
    scoring, policies = sourced(SCORING), sourced(POLICIES)
    names = scoring.model.hand_raisers
    return DefinitionSet(
        lists=sourced(LISTS),
        scoring=scoring,
        policies=Sourced(with_hand_raisers(policies.model, names), policies.source),
        recycle=sourced(RECYCLE),
        traits=sourced(TRAITS),
        journeys=journeys,
    )


def shipped_set(config_dir: Path, journeys_dir: Path | None) -> DefinitionSet:
    """The definitions of the files shipped in ``config_dir`` (and the journey library)."""

    def sourced(kind: Kind[Any]) -> Sourced:
        found = read_active(kind, config_dir / kind.filename)
        return Sourced(found.model, found.source)

    catalog = journey_catalog([], journeys_dir)
    journeys = {name: Sourced(j.model, j.source) for name, j in catalog.items()}
    return _definition_set(sourced, journeys)


def check_references(
    baseline: DefinitionSet,
    kind: Kind[Any],
    candidate: Any,
    source: str,
    *,
    warnings: bool = False,
    more: Iterable[tuple[Any, str]] = (),
) -> list[Finding]:
    """The reference checks' findings candidates of ``kind`` (``candidate`` from ``source``,
    and ``more`` of them: journeys) bring into ``baseline`` (errors only, unless
    ``warnings``)."""
    changed, sources = _with(baseline, kind, candidate, source), {source}
    for model, where in more:
        changed, sources = _with(changed, kind, model, where), sources | {where}
    found = findings_about(changed, baseline, sources)
    return [f for f in found if warnings or not f.warning]


def _with(baseline: DefinitionSet, kind: Kind[Any], candidate: Any, source: str) -> DefinitionSet:
    if kind == JOURNEY:
        journeys = {**baseline.journeys, candidate.name: Sourced(candidate, source)}
        return replace(baseline, journeys=journeys)
    if kind == POLICIES:
        names = baseline.scoring.model.hand_raisers
        return replace(baseline, policies=Sourced(with_hand_raisers(candidate, names), source))
    if kind == SCORING:
        policies = with_hand_raisers(baseline.policies.model, candidate.hand_raisers)
        changed = replace(baseline, policies=Sourced(policies, baseline.policies.source))
        return replace(changed, scoring=Sourced(candidate, source))
    if kind == LISTS:
        return replace(baseline, lists=Sourced(candidate, source))
    if kind == RECYCLE:
        return replace(baseline, recycle=Sourced(candidate, source))
    if kind == TRAITS:
        return replace(baseline, traits=Sourced(candidate, source))
    return baseline


def check_bundle(scoring: ScoringModel, lists: ListsConfig, states: DemandStatesConfig) -> None:
    """The contact bundle's kinds must agree: lists name known demand states, and the scoring
    model reads only defined lists (ConfigError otherwise)."""
    check_demand_state_names(lists, states.order, "lists")
    missing = sorted(scoring.lists_used - {d.name for d in lists.lists})
    if missing:
        raise ConfigError(f"scoring: the model uses list {missing[0]!r}, which lists lacks")


def check_rules(
    journeys: Iterable[JourneyDefinition], policies: Policies, hand_raisers: Iterable[str] = ()
) -> None:
    """Journeys and policies compile together: priorities, categories and exclusivity groups
    make sense, and hand-raisers are named once (ConfigError otherwise). ``hand_raisers`` are
    the scoring model's, the one place they are defined."""
    names = list(hand_raisers)
    given = policies.hand_raiser.events
    if given is not None and sorted(given) != sorted(names):
        raise ConfigError(
            "policies: hand_raiser.events: hand-raiser events are defined once, in the scoring "
            f"model's hand_raisers ({', '.join(names) or 'none'}); remove this key"
        )
    compile_rules([journey.enrollment for journey in journeys], with_hand_raisers(policies, names))
