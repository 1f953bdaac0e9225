"""The rules activity: decisions for the contact workflow, recorded with their traces.

Rules run here, never in workflow code (durable_rules keeps native global state). The engine
for the active journeys and policies is compiled once per version and shared by all calls.
Occurrences of one step are decided in order, each seeing the enrollments the previous ones
produced, so a demo request that enrolls Demo Follow-up also pre-empts nurture in one call.
"""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rollout import Rollouts
from contacts.contract import DecideStepInput, DecideStepResult, PinnedJourney
from contacts.enrollments import apply_decision
from definitions import LISTS, POLICIES, SCORING, Definitions
from models.decisions import Decision, DecisionRequest, explain_decision
from revops.errors import ConfigError
from revops.metrics import RULES_DECISIONS
from rules import RulesEngine, compile_rules
from rules.policies import with_hand_raisers
from store.decisions import DecisionLog
from store.journeys import JourneyLog
from store.repo import Store

__all__ = ["RulesActivities"]


class RulesActivities:
    """Decides for contacts; holds the decision log and the definitions service."""

    def __init__(self, store: Store, definitions: Definitions) -> None:
        self._log = DecisionLog(store)
        self._journeys = JourneyLog(store)
        self._definitions = definitions
        self._rollouts = Rollouts(store, definitions)
        self._engine = definitions.memo(self._compile)

    def engine(self) -> tuple[RulesEngine, dict[str, PinnedJourney]]:
        """The compiled engine for the active journeys and policies, and those journeys
        (cached until a deploy, a rollback or a definition file changes them)."""
        return self._engine.get()

    def _compile(self) -> tuple[RulesEngine, dict[str, PinnedJourney]]:
        journeys = self._definitions.journeys()
        hand_raisers = self._definitions.get(SCORING).hand_raisers
        policies = with_hand_raisers(self._definitions.get(POLICIES), hand_raisers)
        engine = compile_rules([j.enrollment for j in journeys.values()], policies)
        pinned = {
            name: PinnedJourney(name=name, version=j.version, definition=j)
            for name, j in journeys.items()
        }
        return engine, pinned

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
        suppression = self._definitions.get(LISTS).suppression & data.base.contact.lists
        base = self._bounces(data.base).model_copy(
            update={"suppression_lists": sorted(suppression)}
        )
        active = list(base.active_enrollments)
        past = list(base.past_enrollments)
        versions = {name: journey.version for name, journey in journeys.items()}
        result = DecideStepResult()
        explained = []
        for occurrence in data.occurrences:
            request = base.model_copy(
                update={
                    "occurrence": occurrence,
                    "active_enrollments": active,
                    "past_enrollments": past,
                }
            )
            decision = engine.decide(request)
            _count(decision)
            explained.append((decision, explain_decision(decision)))
            result.decisions.append(decision)
            outcome = apply_decision(decision, active, past, versions, base.contact.now)
            active, past = outcome.active, outcome.past
            for name in decision.journeys("enroll"):
                if name in journeys:
                    contact_id = base.contact.contact_id
                    result.journeys[name] = self._rollouts.pin(journeys[name], contact_id)
        self._log.record_all(explained)
        return result

    def _bounces(self, base: DecisionRequest) -> DecisionRequest:
        """The contact workflow counts every "Email Bounced" as hard; the event log says
        which bounces suppress (hard ones, and a soft one that reached the limit in a row)."""
        if not base.hard_bounced:
            return base
        facts = self._journeys.deliverability(base.contact.contact_id)
        return base.model_copy(update={"hard_bounced": facts.hard_bounced})


def _count(decision: Decision) -> None:
    """One ``revops_rules_decisions`` increment per action (``none`` when it took none)."""
    kinds: list[str] = [action.kind for action in decision.actions] or ["none"]
    for kind in kinds:
        RULES_DECISIONS.labels(kind).inc()
