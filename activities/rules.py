"""The rules activity: decisions for the contact workflow, recorded with their traces.

Rules run here, never in workflow code (durable_rules keeps native global state). The engine
for the active journeys and policies is compiled once per version and shared by all calls.
Occurrences of one step are decided in order, each seeing the enrollments the previous ones
produced, so a demo request that enrolls Demo Follow-up also pre-empts nurture in one call.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.decisions import ActiveEnrollment, Decision, PastEnrollment, explain_decision
from models.rules_io import DecideStepInput, DecideStepResult, PinnedJourney
from revops.enrollment import JourneyEnrollment, parse_enrollment
from revops.errors import ConfigError
from revops.policies import Policies
from revops.yamlio import read_yaml
from rules import RulesEngine, compile_rules
from store.decisions import DecisionLog
from store.definitions_cache import DefinitionsCache, active_definition
from store.registry import Registry
from store.repo import Store

__all__ = ["JourneyCatalog", "RulesActivities"]

_ENROLLMENT_KEYS = frozenset(JourneyEnrollment.model_fields)


class JourneyCatalog:
    """Active journey definitions: deployed versions first, the ``journeys/`` files otherwise."""

    def __init__(self, registry: Registry, journeys_dir: Path) -> None:
        self._registry = registry
        self._dir = journeys_dir

    def pinned(self) -> dict[str, PinnedJourney]:
        """Every active journey by name, with its full body and version."""
        found: dict[str, PinnedJourney] = {}
        for path in sorted(self._dir.glob("*.yaml")):
            body = read_yaml(path)
            if isinstance(body, dict) and "name" in body and "trigger" in body:
                version = int(body.get("version", 1))
                found[body["name"]] = PinnedJourney(name=body["name"], version=version, body=body)
        for row in self._registry.active_all("journey"):
            found[row.name] = PinnedJourney(
                name=row.name, version=row.version, body={**row.body, "version": row.version}
            )
        return found

    @staticmethod
    def enrollment(journey: PinnedJourney) -> JourneyEnrollment:
        """The enrollment part of a journey body (steps are the journey engine's)."""
        data = {k: v for k, v in journey.body.items() if k in _ENROLLMENT_KEYS}
        data["version"] = journey.version
        return parse_enrollment(data, f"journey {journey.name!r}")


class RulesActivities:
    """Decides for contacts; holds the store, the registry and the config location."""

    def __init__(self, store: Store, config_dir: Path, journeys_dir: Path) -> None:
        self._registry = Registry(store)
        self._log = DecisionLog(store)
        self._config_dir = config_dir
        self._catalog = JourneyCatalog(self._registry, journeys_dir)
        self._cache: DefinitionsCache[tuple[RulesEngine, dict[str, PinnedJourney]]] = (
            DefinitionsCache(self._registry, [config_dir, journeys_dir])
        )

    def _policies(self) -> Policies:
        policies = active_definition(self._registry, "policies", self._config_dir)
        assert isinstance(policies, Policies)
        return policies

    def engine(self) -> tuple[RulesEngine, dict[str, PinnedJourney]]:
        """The compiled engine for the active definitions, and those definitions (cached
        until a deploy, a rollback or a definition file changes them)."""
        return self._cache.get(self._compile)

    def _compile(self) -> tuple[RulesEngine, dict[str, PinnedJourney]]:
        journeys = self._catalog.pinned()
        enrollments = [JourneyCatalog.enrollment(j) for j in journeys.values()]
        return compile_rules(enrollments, self._policies()), journeys

    @activity.defn(name="decide_step")
    def decide_step(self, data: DecideStepInput) -> DecideStepResult:
        """Decide each occurrence in order; record every decision with its explanation."""
        try:
            engine, journeys = self.engine()
        except (ConfigError, ValidationError) as exc:
            # Retrying cannot fix a definition: fail this call, the contact carries on.
            raise ApplicationError(
                f"active definitions are invalid: {exc}", type="ConfigError", non_retryable=True
            ) from exc
        active = list(data.base.active_enrollments)
        past = list(data.base.past_enrollments)
        result = DecideStepResult()
        explained = []
        for occurrence in data.occurrences:
            request = data.base.model_copy(
                update={
                    "occurrence": occurrence,
                    "active_enrollments": active,
                    "past_enrollments": past,
                }
            )
            decision = engine.decide(request)
            explained.append((decision, explain_decision(decision)))
            result.decisions.append(decision)
            active, past = _apply(decision, active, past, data.base.contact.now)
            for name in decision.journeys("enroll"):
                if name in journeys:
                    result.journeys[name] = journeys[name]
        self._log.record_all(explained)
        return result


def _apply(
    decision: Decision,
    active: list[ActiveEnrollment],
    past: list[PastEnrollment],
    now: datetime,
) -> tuple[list[ActiveEnrollment], list[PastEnrollment]]:
    """The enrollments after a decision's exits, pauses and enrollments."""
    leaving = set(decision.journeys("exit"))
    pausing = set(decision.journeys("pause"))
    kept = [
        e.model_copy(update={"paused": e.paused or e.journey in pausing})
        for e in active
        if e.journey not in leaving
    ]
    for action in decision.of_kind("enroll"):
        if action.journey is None:
            continue
        kept.append(
            ActiveEnrollment(
                journey=action.journey,
                version=action.version or 1,
                priority=action.priority or 0,
                exclusivity_group=action.exclusivity_group,
                enrolled_at=now,
            )
        )
        past = [*past, PastEnrollment(journey=action.journey, enrolled_at=now)]
    return kept, past
