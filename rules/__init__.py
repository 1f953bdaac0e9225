"""The rules module: enrollment, suppression and priority decisions with a trace (SPEC R5).

Call it from activities or plain code, never from workflow code (durable_rules keeps native
global state). ``compile_rules(journeys, policies).decide(request)`` is the whole API.

- ``engine``: compiling (once per version) and deciding, stratum by stratum;
- ``adapter``: durable_rules (the only importer): host, lock, sessions, crash workarounds;
- ``rulebook``: the policy rules: suppression, triggers, re-enrollment, throttling, priority;
- ``facts``: what Python observes for a decision, flattened into facts;
- ``catalog``: the compiled journeys: versions, resolved priorities, exclusivity checks;
- ``verdict``: the derived facts as the decision's ordered actions;
- ``policies``: the global policies (``config/policies.yaml``) and their time arithmetic.
"""

from rules.adapter import RuleEvaluationError, live_sessions
from rules.engine import RULES_REVISION, RulesEngine, compile_rules

__all__ = [
    "RULES_REVISION",
    "RuleEvaluationError",
    "RulesEngine",
    "compile_rules",
    "live_sessions",
]
