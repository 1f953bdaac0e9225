"""The rules engine: journey enrollments and global policies compiled into one ruleset.

``compile_rules(journeys, policies)`` compiles once per version (a hash of the definitions, the
policies and ``RULES_REVISION``) and shares the result; ``RulesEngine.decide(request)`` decides
for one contact at one moment, statelessly and thread-safely, with a trace of every rule that
fired. A decision runs in strata:

1. Python observes the request (``rules.facts``): the contact, its running journeys with their
   exit criteria, the occurrence; rules (``rules.rulebook``) derive signals, blocks, triggered
   journeys, vetoes, exits, pauses and send verdicts;
2. journeys that triggered and were not vetoed meet the running journeys of their exclusivity
   group; rules derive who is outranked, held off or pre-empted;
3. plain Python turns the derived facts into ordered actions (``rules.verdict``).

The engine itself is behind ``rules.adapter``, the only module that imports durable_rules.
Call this from activities or plain code, never from workflow code: the engine keeps native
global state.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from audience.facts import ContactFacts
from journeys.enrollment import JourneyEnrollment
from models.decisions import Decision, DecisionRequest, Review
from rules.adapter import Ruleset
from rules.catalog import Catalog
from rules.facts import Observation, contest_facts, input_facts
from rules.policies import Policies
from rules.rulebook import add_rules
from rules.verdict import assemble

__all__ = ["RULES_REVISION", "RulesEngine", "compile_rules"]

RULES_REVISION = "2"
"""Bump when the rule graph (``rules.rulebook``) changes: it is part of every ruleset version."""

_ENGINES: dict[str, RulesEngine] = {}
_COMPILING = threading.Lock()


def _version_of(journeys: Sequence[JourneyEnrollment], policies: Policies) -> str:
    """A stable hash of everything compiled: definitions, policies and the rule graph."""
    body = {
        "rules": RULES_REVISION,
        "policies": policies.model_dump(mode="json"),
        "journeys": sorted(
            (j.model_dump(mode="json", by_alias=True) for j in journeys),
            key=lambda d: (d["name"], d["version"]),
        ),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RulesEngine:
    """One compiled ruleset (journeys + policies). Build it with :func:`compile_rules`."""

    def __init__(self, journeys: Sequence[JourneyEnrollment], policies: Policies) -> None:
        """Compile and register the ruleset; invalid definitions raise ConfigError."""
        self.policies = policies
        self.version = _version_of(journeys, policies)
        self._catalog = Catalog(journeys, policies)
        self._rules: Ruleset[Observation] = Ruleset(self.version)
        add_rules(self._rules, self._catalog, policies)
        self._rules.register()

    @property
    def journeys(self) -> list[JourneyEnrollment]:
        """The latest version of every journey, by name."""
        latest = self._catalog.latest
        return [latest[name].spec for name in sorted(latest)]

    @property
    def rule_names(self) -> list[str]:
        """Every compiled rule's name, in compilation order."""
        return self._rules.rule_names

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide for one contact at one moment; stateless and thread-safe.

        Observations (criteria, local time, cap counts) are made before the engine's lock;
        only the session itself runs under it. A failing rule raises RuleEvaluationError.
        """
        seen = Observation.of(request)
        facts = input_facts(seen, self._catalog, self.policies)
        session = self._rules.run(seen, facts, contest_facts)
        return assemble(session, self._catalog, self.policies, self.version)


def _warm_up(engine: RulesEngine) -> None:
    """One throw-away decision in the compiling thread before any other thread uses it."""
    facts = ContactFacts(contact_id="warm-up", now=datetime(2000, 1, 3, 12, tzinfo=UTC))
    engine.decide(DecisionRequest(contact=facts, occurrence=Review()))


def compile_rules(journeys: Sequence[JourneyEnrollment], policies: Policies) -> RulesEngine:
    """The engine for these definitions, compiled once per version and then shared.

    Raises ConfigError for an invalid definition (missing priority, duplicate version,
    equal priorities within an exclusivity group).
    """
    version = _version_of(journeys, policies)
    with _COMPILING:
        engine = _ENGINES.get(version)
        if engine is None:
            engine = RulesEngine(journeys, policies)
            _warm_up(engine)
            _ENGINES[version] = engine
        return engine
