"""The rules module: enrollment, suppression and priority decisions with a trace (SPEC R5).

Call it from activities or plain code, never from workflow code (durable_rules keeps native
global state). ``compile_rules(journeys, policies).decide(request)`` is the whole API.
"""

from rules.engine import (
    RULES_REVISION,
    RuleEvaluationError,
    RulesEngine,
    compile_rules,
    live_sessions,
)

__all__ = [
    "RULES_REVISION",
    "RuleEvaluationError",
    "RulesEngine",
    "compile_rules",
    "live_sessions",
]
