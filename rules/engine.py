"""The rules engine: journey enrollments + global policies compiled into one durable_rules ruleset.

This is the only module that imports durable_rules (unmaintained upstream, so it stays behind
this one door). A decision is stateless: the request's facts are asserted under a fresh session
id, rules forward-chain synchronously (a fact asserted inside an action fires its rules before
the outer assert returns), the derived facts are gathered by session id, and the session is
deleted. One ruleset holds at most 1,024 live sessions; here at most one is ever open, because
every use of the native engine is serialised by one lock (the GIL serialises it anyway).

Evaluation is stratified so that every durable rule is positive (no rule waits for the absence
of a fact, which would depend on assertion order):

1. contact, active enrollments and the occurrence are asserted; rules derive signals
   (hand_raiser -> route_now, sales_active, customer), blocks, triggered journeys, vetoes,
   exits, pauses and send verdicts;
2. journeys that triggered and were not vetoed ("survivors") meet the running journeys of
   their exclusivity group ("staying"); rules derive who is outranked, who is held off by a
   running journey, and whom a survivor pre-empts;
3. plain Python assembles the actions: the survivors nobody outranked are enrolled, and only
   they pre-empt.

Every rule that fired is traced in order with the facts it matched and the facts it derived.

Two memory bugs of durable_rules 2.0.28 (found with valgrind; both crashed the process) are
worked around here: see ``RulesEngine._prime`` (uninitialised session slots) and ``_cross``
(joins scanning past their expression list). docs/rules.md has the details.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Literal
from zoneinfo import ZoneInfo

from durable import engine as durable_engine
from durable.lang import c, m, when_all

from models.decisions import (
    Action,
    ActionKind,
    ActiveEnrollment,
    Decision,
    DecisionRequest,
    EventOccurred,
    ListEntered,
    Review,
    SendRequested,
    StageEntered,
    TraceEntry,
    describe_occurrence,
)
from models.facts import ContactFacts
from revops.conditions import Condition, Snapshot, evaluate
from revops.enrollment import EventTrigger, JourneyEnrollment, ListTrigger, OncePerDays
from revops.errors import ConfigError, RevopsError
from revops.policies import Policies, earliest_send_at

__all__ = [
    "RULES_REVISION",
    "RuleEvaluationError",
    "RulesEngine",
    "compile_rules",
    "live_sessions",
]

RULES_REVISION = "1"
"""Bump when the rule graph in this module changes: it is part of every ruleset version."""

Fact = dict[str, Any]
Derive = Callable[["_Session", dict[str, Fact]], list[Fact]]

_LOCK = threading.RLock()
_SESSION_IDS = itertools.count(1)
_RULESET_IDS = itertools.count(1)
_ENGINES: dict[str, RulesEngine] = {}
_OPEN: dict[str, _Session] = {}
_HOST: list[Any] = []
_DAY = 86_400.0
_JOIN = "join"
_PRIMED_SLOTS = 7  # the native pool starts with 8 slots, slot 0 unused


class RuleEvaluationError(RevopsError):
    """A rule action failed: a bug, never a decision. The activity should fail and retry."""


class _Host(durable_engine.Host):  # type: ignore[misc]
    """A durable_rules host without its background dispatch threads.

    The stock host polls every ruleset from timer threads; with no durable_rules timers
    or queued events here, those threads could only pick up our actions on another thread.
    """

    def _run(self) -> None:
        """Start nothing."""


def _host() -> Any:
    """The one host, created on first use (never at import time)."""
    if not _HOST:
        _HOST.append(_Host())
    return _HOST[0]


def live_sessions() -> int:
    """Sessions currently open in any ruleset (0 between decisions)."""
    with _LOCK:
        return len(_OPEN)


# ---------------------------------------------------------------------------------------------
# Compiled journeys
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Journey:
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


def _journey_table(
    specs: Sequence[JourneyEnrollment], policies: Policies
) -> tuple[dict[tuple[str, int], _Journey], dict[str, _Journey]]:
    """All versions by (name, version) and the latest version by name; refuses duplicates."""
    versions: dict[tuple[str, int], _Journey] = {}
    for spec in specs:
        key = (spec.name, spec.version)
        if key in versions:
            raise ConfigError(f"journey {spec.name!r}: version {spec.version} defined twice")
        versions[key] = _Journey(spec, _resolve_priority(spec, policies))
    latest: dict[str, _Journey] = {}
    for journey in versions.values():
        current = latest.get(journey.name)
        if current is None or journey.spec.version > current.spec.version:
            latest[journey.name] = journey
    _check_groups(latest.values())
    return versions, latest


def _check_groups(journeys: Iterable[_Journey]) -> None:
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


# ---------------------------------------------------------------------------------------------
# One decision's session
# ---------------------------------------------------------------------------------------------


class _Criteria:
    """Entry and exit criteria of one decision, on one snapshot built only when needed."""

    def __init__(self, facts: ContactFacts) -> None:
        """Nothing is indexed until a criterion is actually evaluated."""
        self._facts = facts
        self._snapshot: Snapshot | None = None

    def holds(self, condition: Condition | None, default: bool) -> bool:
        """``condition`` evaluated now; ``default`` when the journey defines none."""
        if condition is None:
            return default
        if self._snapshot is None:
            self._snapshot = Snapshot.of(self._facts)
        return evaluate(condition, self._snapshot)


@dataclass
class _Session:
    """What one decision gathers while its rules fire: the trace and the derived facts."""

    sid: str
    request: DecisionRequest
    criteria: _Criteria
    trace: list[TraceEntry] = field(default_factory=list)
    derived: dict[str, Fact] = field(default_factory=dict)
    by_type: dict[str, list[Fact]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, fact: Fact) -> bool:
        """Record a derived fact; False when the same fact was already derived."""
        if fact["id"] in self.derived:
            return False
        self.derived[fact["id"]] = fact
        self.by_type.setdefault(fact["t"], []).append(fact)
        return True

    def of_type(self, kind: str) -> list[Fact]:
        """Derived facts of one type, in derivation order."""
        return self.by_type.get(kind, [])


def _fact(fact_type: str, key: str, /, **fields: Any) -> Fact:
    """A fact; the id makes a fact derived twice (by two paths) count once."""
    return {"t": fact_type, "id": f"{fact_type}:{key}", _JOIN: 1, **fields}


def _cross(test: Any, alias: str) -> Any:
    """A pattern comparing with another fact (``alias``), safe on durable_rules 2.0.28.

    Its join evaluation has a bug: when the *last* cross-fact comparison of an ``&`` is
    false, it scans past the end of the expression list, reading freed or unmapped memory
    (found with valgrind; it crashed the process after some thousands of decisions). Ending
    every such pattern with a comparison that always holds (every fact carries ``join: 1``)
    keeps the scan in bounds. Patterns with cross-fact comparisons must not use ``|``: the
    same routine skips whatever follows an ``|`` group inside an ``&``.
    """
    return test & (getattr(m, _JOIN) == getattr(getattr(c, alias), _JOIN))


def _veto_fact(journey: str, code: str, kind: str, reason: str) -> Fact:
    """A triggered journey may not start: ``kind`` is 'refuse' or 'suppress'."""
    return _fact("veto", f"{journey}:{code}", journey=journey, kind=kind, reason=reason)


def _plain(fact: Any) -> Fact:
    """A matched fact as the trace shows it (without durable_rules' bookkeeping)."""
    return {k: v for k, v in dict(fact).items() if k not in ("sid", "id", _JOIN)}


_PLAIN = frozenset({str, int, bool, type(None)})


def _json_safe(value: Any) -> Any:
    """Numbers durable_rules' JSON parser reads: it fails (error 204) on exponent notation.

    Python writes floats below 1e-4 or from 1e16 as ``1e-06`` / ``1e+16``; a few seconds
    of ``sales_days_ago`` is enough to produce one. Tiny values become 0, huge ones are capped.
    """
    if isinstance(value, dict):  # on the hot path: plain values are not recursed into
        return {k: v if type(v) in _PLAIN else _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _PLAIN else _json_safe(v) for v in value]
    if isinstance(value, float):
        if abs(value) < 1e-4:
            return 0.0
        return max(-1e15, min(1e15, value))
    return value


def _normal(value: Any) -> Any:
    """Trigger equality as the condition language does it: case-blind, numeric strings as
    numbers. Applied to both the compiled constant and the event's property."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value.casefold()
    return None


def _references(node: Any, aliases: set[str]) -> bool:
    """Whether a compiled pattern compares with another fact: ``{"field": {"x": "field"}}``."""
    if isinstance(node, list):
        return any(_references(item, aliases) for item in node)
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key.startswith("$"):
            if _references(value, aliases):
                return True
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in aliases:
            return True
    return False


def _check_join_safety(name: str, definition: dict[str, Any]) -> None:
    """Refuse, at compile time, a join pattern that would hit the durable_rules bug.

    See ``_cross``: a pattern comparing with another fact must be an ``&`` ending with the
    always-true ``join`` comparison and must not contain ``|``. This guards future rules.
    """
    aliases = {alias for pattern in definition["all"] for alias in pattern}
    for pattern in definition["all"]:
        for alias, expression in pattern.items():
            if not _references(expression, aliases):
                continue
            parts = expression.get("$and", [])
            safe = bool(parts) and _JOIN in parts[-1] and "$or" not in json.dumps(expression)
            if not safe:
                raise RuntimeError(f"rule {name}: pattern {alias!r} must be built with _cross()")


def _send() -> Any:
    """A fresh 'the occurrence is a send request' pattern (aliasing mutates patterns)."""
    return (m.t == "occurrence") & (m.kind == "send")


def _marketing_send() -> Any:
    """A fresh 'the occurrence is a marketing send' pattern."""
    return _send() & (m.marketing == True)  # noqa: E712


def _any_of(field_name: str, values: Iterable[str]) -> Any:
    """``m.field == v1 | m.field == v2 ...``; None when there are no values."""
    tests = [getattr(m, field_name) == value for value in values]
    return reduce(lambda a, b: a | b, tests) if tests else None


def _per_days_reason(days: float) -> Callable[[Fact], str]:
    """The refusal text of a 'once per N days' journey entered too recently."""

    def reason(j: Fact) -> str:
        return (
            f"entered {j['days_since_last']:.1f} days ago; re-enrollment is once per {days:g} days"
        )

    return reason


def _days(seconds: float) -> str:
    """Days for reasons: '3.5 days', '1 day'."""
    days = round(seconds / _DAY, 1)
    return f"{days:g} day" + ("" if days == 1 else "s")


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class RulesEngine:
    """One compiled ruleset (journeys + policies). Build it with :func:`compile_rules`."""

    def __init__(self, journeys: Sequence[JourneyEnrollment], policies: Policies) -> None:
        """Compile and register the ruleset; invalid definitions raise ConfigError."""
        self.policies = policies
        self.version = _version_of(journeys, policies)
        # A suffix keeps two engines of one version apart (durable_rules refuses a name twice).
        self.ruleset_name = f"revops_{self.version}_{next(_RULESET_IDS)}"
        self._versions, self._latest = _journey_table(journeys, policies)
        self._property_fields = self._collect_property_fields()
        self._rules: list[tuple[str, Any]] = []
        self._build_rules()
        definitions = {f"r{i}": rule.define() for i, (_, rule) in enumerate(self._rules)}
        for (name, _), definition in zip(self._rules, definitions.values(), strict=True):
            _check_join_safety(name, definition)
        with _LOCK:
            _host().register_rulesets({self.ruleset_name: definitions})
            self._prime()

    # -- public -----------------------------------------------------------------------------

    @property
    def journeys(self) -> list[JourneyEnrollment]:
        """The latest version of every journey, by name."""
        return [self._latest[name].spec for name in sorted(self._latest)]

    @property
    def rule_names(self) -> list[str]:
        """Every compiled rule's name, in compilation order."""
        return [name for name, _ in self._rules]

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide for one contact at one moment; stateless and thread-safe.

        Observations (criteria, local time, cap counts) are computed outside the lock; only
        the native session (open, assert, delete) runs under it.
        """
        criteria = _Criteria(request.contact)
        inputs = self._input_facts(request, criteria)
        with _LOCK:
            session = self._open(request, criteria)
            try:
                for fact in inputs:
                    self._assert(session, fact)
                for fact in self._contest_facts(session):
                    self._assert(session, fact)
            finally:
                self._close(session)
        if session.errors:
            raise RuleEvaluationError("; ".join(session.errors))
        return self._assemble(session)

    # -- sessions ---------------------------------------------------------------------------

    def _prime(self) -> None:
        """Run one action in each of the ruleset's first session slots, then free them.

        durable_rules 2.0.28 does not initialise a new session slot's action context and
        frees it on ``delete_state``: deleting a session in a never-used slot in which no
        action ran crashes the process (a double free; found with valgrind). An action
        resets the context, and freed slots keep it reset. Slots are reused last-freed
        first, and the lock keeps at most one session open, so every decision runs in one
        of these primed slots.
        """
        sids = [f"prime-{i}" for i in range(_PRIMED_SLOTS)]
        for sid in sids:
            _host().assert_fact(self.ruleset_name, {"t": "prime", "id": "prime", "sid": sid})
        for sid in sids:
            _host().delete_state(self.ruleset_name, sid)

    def _open(self, request: DecisionRequest, criteria: _Criteria) -> _Session:
        """A fresh session id; nothing of an earlier decision can leak into this one."""
        session = _Session(sid=f"d{next(_SESSION_IDS)}", request=request, criteria=criteria)
        _OPEN[session.sid] = session
        return session

    def _close(self, session: _Session) -> None:
        """Delete the session's native state, so the 1,024-session limit is never near."""
        # If asserting the very first fact failed, no native state exists to delete.
        with contextlib.suppress(Exception):
            _host().delete_state(self.ruleset_name, session.sid)
        _OPEN.pop(session.sid, None)

    def _assert(self, session: _Session, fact: Fact) -> None:
        """Assert one input fact; no matching rule simply means no decision from it."""
        try:
            state = _host().assert_fact(self.ruleset_name, {**_json_safe(fact), "sid": session.sid})
        except durable_engine.MessageNotHandledException:
            return
        if isinstance(state, dict) and "exception" in state and not session.errors:
            session.errors.append(str(state["exception"]).split(", traceback")[0])

    # -- rule building ----------------------------------------------------------------------

    def _rule(self, name: str, *conditions: Any, derive: Derive) -> None:
        """Add a rule: ``conditions`` are aliased durable expressions, ``derive`` its action."""
        self._rules.append((name, when_all(*conditions)(self._action(name, derive))))

    def _action(self, name: str, derive: Derive) -> Callable[[Any], None]:
        """Wrap ``derive`` so it is traced and its facts chain into the same session."""

        def run(closure: Any) -> None:
            session = _OPEN[closure.s.sid]
            seen = {alias: _plain(fact) for alias, fact in closure._m.items()}
            try:
                facts = derive(session, seen)
            except Exception as exc:
                session.errors.append(f"rule {name}: {exc!r}")
                raise
            session.trace.append(
                TraceEntry(rule=name, facts_seen=seen, derived=[f["id"] for f in facts])
            )
            for fact in facts:
                self._chain(closure, session, fact)

        return run

    @staticmethod
    def _chain(closure: Any, session: _Session, fact: Fact) -> None:
        """Record a derived fact and assert it into the session (its rules fire next)."""
        if not session.add(fact):
            return
        with contextlib.suppress(
            durable_engine.MessageNotHandledException, durable_engine.MessageObservedException
        ):
            closure.assert_fact(dict(fact))

    def _build_rules(self) -> None:
        """The whole rule graph; each group of rules is one method below."""
        self._prime_rule()
        self._contact_rules()
        self._trigger_rules()
        self._hand_raiser_rules()
        self._veto_rules()
        self._active_rules()
        self._send_rules()
        self._contest_rules()

    def _prime_rule(self) -> None:
        """A rule for :meth:`_prime` only: its action is deliberately not traced."""

        def primed(_: Any) -> None:
            return None

        self._rules.append(("decision.prime", when_all(m.t == "prime")(primed)))

    # -- contact: consent, deliverability, competitors, sales activity, lifecycle ------------

    def _block(self, name: str, test: Any, code: str, scope: str, reason: str) -> None:
        """A contact-level block: no marketing (scope 'marketing') or nothing ('all')."""

        def derive(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [_fact("block", code, scope=scope, code=code, reason=reason)]

        self._rule(name, c.k << ((m.t == "contact") & test), derive=derive)

    def _contact_rules(self) -> None:
        """Consent, deliverability and competitor blocks, then the chained signals."""
        s = self.policies.suppression
        blocks = [
            (s.honour_unsubscribe, "unsubscribed", True, "unsubscribed", "unsubscribed"),
            (s.require_subscription, "subscribed", False, "not_subscribed", "not subscribed"),
            (s.require_gdpr_consent, "gdpr_refused", True, "gdpr", "no GDPR consent"),
            (s.ccpa_opt_out_blocks_marketing, "ccpa_opt_out", True, "ccpa", "CCPA opt-out"),
            (s.hard_bounce, "hard_bounced", True, "hard_bounce", "address hard-bounced"),
            (s.spam_complaint, "spam_complaint", True, "spam", "spam complaint"),
        ]
        for enabled, flag, wanted, code, reason in blocks:
            if enabled:
                test = getattr(m, flag) == wanted
                self._block(f"consent.{code}", test, code, "marketing", reason)
        if s.competitors:
            test = m.competitor == True  # noqa: E712
            self._block("contact.competitor", test, "competitor", "all", "contact is a competitor")
        self._sales_rules()
        self._customer_rules()

    def _sales_rules(self) -> None:
        """sales activity -> sales_active -> block marketing (two chained steps)."""
        limit = self.policies.suppression.sales_activity_days
        if limit <= 0:
            return

        def active(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            ago = seen["k"]["sales_days_ago"]
            return [_fact("signal", "sales_active", name="sales_active", days_ago=ago)]

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            ago = float(seen["s"]["days_ago"]) * _DAY
            reason = (
                f"sales is working this contact (activity {_days(ago)} ago; {limit:g}-day hold)"
            )
            return [_fact("block", "sales_active", scope="marketing", code="sales", reason=reason)]

        recent = (m.sales_days_ago >= 0) & (m.sales_days_ago < limit)
        self._rule("sales.recent_activity", c.k << ((m.t == "contact") & recent), derive=active)
        is_sales = (m.t == "signal") & (m.name == "sales_active")
        self._rule("sales.active_suppresses_marketing", c.s << is_sales, derive=suppress)

    def _customer_rules(self) -> None:
        """A customer stage raises the 'customer' signal (acquisition rules join on it)."""
        stages = _any_of("stage", self.policies.suppression.customer_stages)
        if stages is None or not self.policies.suppression.customers_leave_acquisition:
            return

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [_fact("signal", "customer", name="customer", stage=seen["k"]["stage"])]

        self._rule("lifecycle.customer", c.k << ((m.t == "contact") & stages), derive=customer)

    # -- triggers -----------------------------------------------------------------------------

    def _collect_property_fields(self) -> dict[str, str]:
        """Event property filters become flat fact fields p0, p1 ... (any key is safe then)."""
        keys = sorted(
            {
                key
                for journey in self._latest.values()
                if isinstance(journey.spec.trigger, EventTrigger)
                for key in journey.spec.trigger.properties
            }
        )
        return {key: f"p{i}" for i, key in enumerate(keys)}

    def _trigger_test(self, journey: _Journey) -> Any:
        """The occurrence pattern that enters ``journey``."""
        trigger = journey.spec.trigger
        occurrence = m.t == "occurrence"
        if isinstance(trigger, EventTrigger):
            test = occurrence & (m.kind == "event") & (m.name == trigger.event)
            for key, value in sorted(trigger.properties.items()):
                test = test & (getattr(m, self._property_fields[key]) == _normal(value))
            return test
        if isinstance(trigger, ListTrigger):
            return occurrence & (m.kind == "list_entered") & (m.list == trigger.list)
        return occurrence & (m.kind == "stage_entered") & (m.stage == trigger.stage)

    def _trigger_rules(self) -> None:
        """One rule per journey (latest version): occurrence matches -> 'triggered' fact."""
        for name in sorted(self._latest):
            journey = self._latest[name]
            self._rule(
                f"trigger.{name}",
                c.o << self._trigger_test(journey),
                derive=self._triggered(journey),
            )

    def _triggered(self, journey: _Journey) -> Derive:
        """The action of a trigger rule: look at the contact's history for this journey."""

        def derive(session: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [self._triggered_fact(session, journey)]

        return derive

    def _triggered_fact(self, session: _Session, journey: _Journey) -> Fact:
        """Entry/exit criteria evaluated now, plus what re-enrollment policies compare."""
        request, spec = session.request, journey.spec
        active = next((a for a in request.active_enrollments if a.journey == spec.name), None)
        entries = [p.enrolled_at for p in request.past_enrollments if p.journey == spec.name]
        entries += [a.enrolled_at for a in request.active_enrollments if a.journey == spec.name]
        since = max(0.0, (request.now - max(entries)).total_seconds() / _DAY) if entries else -1.0
        mode = spec.reenrollment if isinstance(spec.reenrollment, str) else "per_days"
        return _fact(
            "triggered",
            spec.name,
            journey=spec.name,
            version=spec.version,
            priority=journey.priority,
            group=journey.group,
            category=journey.category,
            marketing=spec.marketing,
            acquisition=spec.acquisition,
            active=active is not None,
            active_version=active.version if active else 0,
            entry_ok=session.criteria.holds(spec.entry, default=True),
            exit_met=session.criteria.holds(spec.exit, default=False),
            reenrollment=mode,
            past_entries=len(entries),
            days_since_last=round(since, 6),
        )

    # -- hand-raisers: hand_raiser -> route_now -> nurture steps aside -------------------------

    def _hand_raiser_rules(self) -> None:
        """Hand-raiser events route to sales now; categories listed in the policy step aside."""
        policy = self.policies.hand_raiser
        names = _any_of("name", policy.events)
        if names is None:
            return

        def raised(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            event = seen["o"]["name"]
            return [_fact("signal", "hand_raiser", name="hand_raiser", event=event)]

        def route(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            event = seen["h"]["event"]
            return [_fact("signal", "route_now", name="route_now", event=event)]

        event = (m.t == "occurrence") & (m.kind == "event") & names
        self._rule("hand_raiser.detected", c.o << event, derive=raised)
        is_raiser = c.h << ((m.t == "signal") & (m.name == "hand_raiser"))
        if self.policies.suppression.competitors:
            # Competitors raising a hand are not routed to sales (they get nothing but
            # transactional messages); everyone else is.
            not_competitor = c.k << ((m.t == "contact") & (m.competitor == False))  # noqa: E712
            self._rule("hand_raiser.route_now", is_raiser, not_competitor, derive=route)
        else:
            self._rule("hand_raiser.route_now", is_raiser, derive=route)
        self._step_aside_rules()

    def _step_aside_rules(self) -> None:
        """route_now keeps nurture (by default) from starting and pauses it if running."""
        policy = self.policies.hand_raiser
        categories = _any_of("category", policy.suppress_categories)
        if categories is None:
            return
        route_now = c.r << ((m.t == "signal") & (m.name == "route_now"))

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, why = seen["j"]["journey"], f"hand-raiser ({seen['r']['event']}) routed to sales now"
            return [_veto_fact(j, "route_now", "suppress", why)]

        def step_aside(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, why = seen["a"]["journey"], f"hand-raiser ({seen['r']['event']}) routed to sales now"
            return [_fact(policy.active_action, f"{j}:route_now", journey=j, reason=why)]

        candidate = c.j << ((m.t == "triggered") & categories)
        self._rule("hand_raiser.suppresses_category", route_now, candidate, derive=suppress)
        running = c.a << ((m.t == "active") & (m.paused == False) & categories)  # noqa: E712
        self._rule("hand_raiser.steps_aside", route_now, running, derive=step_aside)

    # -- vetoes on triggered journeys -------------------------------------------------------

    def _veto(
        self, name: str, test: Any, code: str, kind: str, reason: Callable[[Fact], str]
    ) -> None:
        """A rule vetoing a triggered journey on its own fields."""

        def derive(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j = seen["j"]
            return [_veto_fact(j["journey"], code, kind, reason(j))]

        self._rule(name, c.j << ((m.t == "triggered") & test), derive=derive)

    def _veto_rules(self) -> None:
        """Why a triggered journey may not start: state, criteria, history, policy blocks."""
        self._veto(
            "enrollment.already_in",
            m.active == True,  # noqa: E712
            "already_in",
            "refuse",
            lambda j: f"already in it (version {j['active_version']})",
        )
        self._veto(
            "enrollment.entry_criteria",
            m.entry_ok == False,  # noqa: E712
            "entry",
            "refuse",
            lambda j: "entry criteria not met",
        )
        self._veto(
            "enrollment.exit_already_met",
            m.exit_met == True,  # noqa: E712
            "exit_met",
            "refuse",
            lambda j: "its exit criteria are already met",
        )
        self._veto(
            "reenrollment.once",
            (m.reenrollment == "once") & (m.past_entries > 0),
            "once",
            "refuse",
            lambda j: "entered before and re-enrollment is once only",
        )
        self._per_days_rules()
        self._block_vetoes()

    def _per_days_rules(self) -> None:
        """One rule per 'once per N days' journey: entered less than N days ago -> refuse."""
        for name in sorted(self._latest):
            policy = self._latest[name].spec.reenrollment
            if not isinstance(policy, OncePerDays):
                continue
            days = policy.once_per_days
            self._veto(
                f"reenrollment.once_per_days.{name}",
                (m.journey == name) & (m.days_since_last >= 0) & (m.days_since_last < days),
                "per_days",
                "refuse",
                _per_days_reason(days),
            )

    def _block_vetoes(self) -> None:
        """Contact blocks suppress journeys: marketing blocks marketing ones, 'all' blocks any."""

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, b = seen["j"]["journey"], seen["b"]
            return [_veto_fact(j, b["code"], "suppress", b["reason"])]

        block = (m.t == "block") & (m.scope == "marketing")
        marketing = (m.t == "triggered") & (m.marketing == True)  # noqa: E712
        self._rule("suppression.marketing_journey", c.j << marketing, c.b << block, derive=suppress)
        everything = (m.t == "block") & (m.scope == "all")
        self._rule(
            "suppression.any_journey",
            c.j << (m.t == "triggered"),
            c.b << everything,
            derive=suppress,
        )

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, stage = seen["j"]["journey"], seen["s"]["stage"]
            why = f"customers ({stage}) are not enrolled in acquisition journeys"
            return [_veto_fact(j, "customer", "refuse", why)]

        acquisition = (m.t == "triggered") & (m.acquisition == True)  # noqa: E712
        is_customer = (m.t == "signal") & (m.name == "customer")
        self._rule(
            "lifecycle.customer_skips_acquisition",
            c.j << acquisition,
            c.s << is_customer,
            derive=customer,
        )

    # -- running journeys ----------------------------------------------------------------------

    def _active_rules(self) -> None:
        """Running journeys leave when their exit criteria hold or the contact became a customer."""

        def criteria(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j = seen["a"]["journey"]
            return [_fact("exit", f"{j}:criteria", journey=j, reason="exit criteria met")]

        met = (m.t == "active") & (m.exit_met == True)  # noqa: E712
        self._rule("exit.criteria_met", c.a << met, derive=criteria)

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, stage = seen["a"]["journey"], seen["s"]["stage"]
            why = f"customers ({stage}) leave acquisition journeys"
            return [_fact("exit", f"{j}:customer", journey=j, reason=why)]

        acquisition = (m.t == "active") & (m.acquisition == True)  # noqa: E712
        is_customer = (m.t == "signal") & (m.name == "customer")
        self._rule(
            "lifecycle.customer_leaves_acquisition",
            c.a << acquisition,
            c.s << is_customer,
            derive=customer,
        )

    # -- sends: suppression, frequency cap, quiet hours -----------------------------------------

    def _send_rules(self) -> None:
        """A send request: marketing sends meet blocks and the cap; sends meet quiet hours.

        Whether a send is marketing (a marketing journey, not transactional) is observed in
        Python and carried on the occurrence, which saves one action per send.
        """
        self._send_block_rules()
        self._cap_rule()
        self._quiet_rule()

    def _send_block_rules(self) -> None:
        """Blocks and a journey that is leaving or stepping aside suppress the send."""

        def blocked(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            b = seen["b"]
            return [_fact("send_block", b["code"], reason=b["reason"])]

        def leaving(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x = seen["x"]
            why = f"{x['journey']} is {'left' if x['t'] == 'exit' else 'paused'}: {x['reason']}"
            return [_fact("send_block", "journey", reason=why)]

        marketing_block = c.b << ((m.t == "block") & (m.scope == "marketing"))
        self._rule("send.suppressed", c.o << _marketing_send(), marketing_block, derive=blocked)
        any_block = c.b << ((m.t == "block") & (m.scope == "all"))
        non_transactional = c.o << (_send() & (m.transactional == False))  # noqa: E712
        self._rule("send.suppressed_any", non_transactional, any_block, derive=blocked)
        for kind in ("exit", "pause"):
            stop = c.x << _cross((m.t == kind) & (m.journey == c.o.journey), "o")
            self._rule(f"send.journey_{kind}", c.o << _send(), stop, derive=leaving)

    def _cap_rule(self) -> None:
        """Over the frequency cap -> defer (the exact time is computed when assembling)."""
        cap = self.policies.frequency_cap
        channels = _any_of("channel", cap.channels)
        if not cap.enabled or channels is None:
            return

        def defer(session: _Session, seen: dict[str, Fact]) -> list[Fact]:
            request = session.request
            release = cap.release_at(request.now, request.recent_marketing_sends)
            why = (
                f"frequency cap: {seen['o']['sends_in_window']} marketing sends in the last "
                f"{cap.window_days:g} days (max {cap.max_sends}); the oldest leaves the window "
                f"at {release:%Y-%m-%d %H:%M} UTC"
            )
            return [_fact("defer", "cap", cause="cap", reason=why)]

        over = _marketing_send() & channels & (m.sends_in_window >= cap.max_sends)
        self._rule("send.frequency_cap", c.o << over, derive=defer)

    def _quiet_rule(self) -> None:
        """Inside quiet hours in the contact's zone -> defer to the next allowed minute."""
        quiet = self.policies.quiet_hours
        channels = _any_of("channel", quiet.channels)
        if not quiet.enabled or channels is None:
            return
        start = quiet.start.hour * 60 + quiet.start.minute
        end = quiet.end.hour * 60 + quiet.end.minute
        if start < end:
            inside = (m.local_minute >= start) & (m.local_minute < end)
        else:
            inside = (m.local_minute >= start) | (m.local_minute < end)
        test = _send() & channels & inside
        if quiet.transactional_exempt:
            test = test & (m.transactional == False)  # noqa: E712

        def defer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            o = seen["o"]
            why = (
                f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} in {o['time_zone']} "
                f"(local time {o['local_time']})"
            )
            return [_fact("defer", "quiet", cause="quiet", reason=why)]

        self._rule("send.quiet_hours", c.o << test, derive=defer)

    # -- stratum 2: exclusivity and priority ----------------------------------------------------

    def _contest_rules(self) -> None:
        """Survivors meet each other and the running journeys of their group."""

        def outranked(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, y = seen["x"], seen["y"]
            why = f"{y['journey']} wins (priority {y['priority']} > {x['priority']})"
            return [_veto_fact(x["journey"], "outranked", "refuse", why)]

        def held(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, a = seen["x"], seen["a"]
            sign = ">" if a["priority"] > x["priority"] else "="
            why = f"in {a['journey']} (priority {a['priority']} {sign} {x['priority']})"
            return [_veto_fact(x["journey"], "held", "refuse", why)]

        def preempts(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, a = seen["x"], seen["a"]
            why = f"pre-empted by {x['journey']} (priority {x['priority']} > {a['priority']})"
            key = f"{a['journey']}:{x['journey']}"
            return [_fact("preempt", key, journey=a["journey"], by=x["journey"], reason=why)]

        def rival(kind: str) -> Any:
            return (m.t == kind) & (m.group == c.x.group)

        higher = c.y << _cross(rival("survivor") & (m.priority > c.x.priority), "x")
        self._rule("priority.outranked", c.x << (m.t == "survivor"), higher, derive=outranked)
        holding = c.a << _cross(rival("staying") & (m.priority >= c.x.priority), "x")
        self._rule("priority.held_by_running", c.x << (m.t == "survivor"), holding, derive=held)
        lower = c.a << _cross(rival("staying") & (m.priority < c.x.priority), "x")
        self._rule("priority.preempts", c.x << (m.t == "survivor"), lower, derive=preempts)

    # -- input facts ------------------------------------------------------------------------

    def _definition(self, name: str, version: int | None = None) -> _Journey | None:
        """The pinned version when known, else the latest, else None (an unknown journey)."""
        if version is not None and (name, version) in self._versions:
            return self._versions[(name, version)]
        return self._latest.get(name)

    def _input_facts(self, request: DecisionRequest, criteria: _Criteria) -> list[Fact]:
        """What Python observes for the rules: the contact, running journeys, the occurrence."""
        actives = [self._active_fact(a, criteria) for a in request.active_enrollments]
        return [self._occurrence_fact(request), self._contact_fact(request), *actives]

    @staticmethod
    def _contact_fact(request: DecisionRequest) -> Fact:
        """Consent, deliverability, competitor flag, stage and days since sales activity."""
        consent = request.consent
        ago = -1.0
        if request.last_sales_activity_at is not None:
            seconds = (request.now - request.last_sales_activity_at).total_seconds()
            ago = max(0.0, seconds / _DAY)
        return {
            "t": "contact",
            "id": "contact",
            _JOIN: 1,
            "subscribed": consent.subscribed,
            "unsubscribed": consent.unsubscribed,
            "gdpr_refused": consent.gdpr_consent is False,
            "ccpa_opt_out": consent.ccpa_opt_out,
            "hard_bounced": request.hard_bounced,
            "spam_complaint": request.spam_complaint,
            "competitor": request.is_competitor,
            "stage": request.contact.stage,
            "sales_days_ago": round(ago, 6),
        }

    def _active_fact(self, active: ActiveEnrollment, criteria: _Criteria) -> Fact:
        """A running journey with the attributes of the version it runs."""
        journey = self._definition(active.journey, active.version)
        spec = journey.spec if journey else None
        exit_met = spec is not None and criteria.holds(spec.exit, default=False)
        return {
            "t": "active",
            "id": f"active:{active.journey}",
            _JOIN: 1,
            "journey": active.journey,
            "version": active.version,
            "priority": active.priority,
            "group": active.exclusivity_group or "",
            "category": journey.category if journey else "",
            "marketing": spec.marketing if spec else True,
            "acquisition": spec.acquisition if spec else False,
            "paused": active.paused,
            "exit_met": exit_met,
        }

    def _occurrence_fact(self, request: DecisionRequest) -> Fact:
        """The triggering occurrence, flattened for durable_rules' pattern matching."""
        occurrence = request.occurrence
        fact = _fact("occurrence", "now", kind=occurrence.kind)
        if isinstance(occurrence, EventOccurred):
            fact["name"] = occurrence.name
            for key, field_name in self._property_fields.items():
                value = _normal(occurrence.properties.get(key))
                if value is not None:
                    fact[field_name] = value
        elif isinstance(occurrence, ListEntered):
            fact["list"] = occurrence.list
        elif isinstance(occurrence, StageEntered):
            fact["stage"] = occurrence.stage
        elif isinstance(occurrence, SendRequested):
            fact.update(self._send_fields(request, occurrence))
        return fact

    def _send_fields(self, request: DecisionRequest, send: SendRequested) -> Fact:
        """Marketing or not, sends already in the cap window, and the contact's local time."""
        pinned = next((a for a in request.active_enrollments if a.journey == send.journey), None)
        journey = self._definition(send.journey, pinned.version if pinned else None)
        zone = ZoneInfo(request.time_zone)
        local = request.now.astimezone(zone)
        window = self.policies.frequency_cap.in_window(request.now, request.recent_marketing_sends)
        return {
            "journey": send.journey,
            "step": send.step,
            "channel": send.channel,
            "transactional": send.transactional,
            "marketing": not send.transactional and (journey.spec.marketing if journey else True),
            "sends_in_window": len(window),
            "time_zone": request.time_zone,
            "local_time": f"{local:%H:%M}",
            "local_minute": local.hour * 60 + local.minute,
        }

    # -- stratum 2 input ----------------------------------------------------------------------

    def _contest_facts(self, session: _Session) -> list[Fact]:
        """Survivors and running journeys of every group with more than one contender."""
        vetoed = {f["journey"] for f in session.of_type("veto")}
        survivors = [f for f in session.of_type("triggered") if f["journey"] not in vetoed]
        if not any(f["group"] for f in survivors):
            return []
        leaving = {f["journey"] for f in session.of_type("exit") + session.of_type("pause")}
        staying = [
            a
            for a in session.request.active_enrollments
            if not a.paused and a.journey not in leaving and a.exclusivity_group
        ]
        groups = [f["group"] for f in survivors if f["group"]] + [
            a.exclusivity_group for a in staying
        ]
        contested = {g for g in groups if groups.count(g) > 1}
        facts = [
            _fact(
                "survivor",
                f["journey"],
                journey=f["journey"],
                group=f["group"],
                priority=f["priority"],
            )
            for f in survivors
            if f["group"] in contested
        ]
        facts += [
            _fact(
                "staying",
                a.journey,
                journey=a.journey,
                group=a.exclusivity_group,
                priority=a.priority,
            )
            for a in staying
            if a.exclusivity_group in contested
        ]
        return facts

    # -- assembling the decision ---------------------------------------------------------------

    def _assemble(self, session: _Session) -> Decision:
        """Turn the derived facts into ordered actions (stratum 3, plain Python)."""
        request = session.request
        vetoes = session.of_type("veto")
        vetoed = {f["journey"] for f in vetoes}
        winners = [f for f in session.of_type("triggered") if f["journey"] not in vetoed]
        actions = self._leave_actions(session, {w["journey"] for w in winners})
        actions += [self._enroll_action(request, w) for w in winners]
        actions += self._veto_actions(vetoes)
        if isinstance(request.occurrence, SendRequested):
            actions.append(self._send_action(session, request.occurrence))
        return Decision(
            contact_id=request.contact_id,
            decided_at=request.now,
            occurrence_kind=request.occurrence.kind,
            occurrence=describe_occurrence(request.occurrence),
            actions=actions,
            signals=[f["name"] for f in session.of_type("signal")],
            trace=session.trace,
            ruleset_version=self.version,
        )

    def _leave_actions(self, session: _Session, winners: set[str]) -> list[Action]:
        """Exits, pre-emptions by an actual winner, pauses: one action per journey.

        The strongest kind wins (exit over pause); the reasons of that kind are all kept.
        """
        steps: list[tuple[ActionKind, str, str]] = [
            ("exit", f["journey"], f["reason"]) for f in session.of_type("exit")
        ]
        for f in session.of_type("preempt"):
            if f["by"] in winners:
                on_preempt = self._on_preempt(session.request, f["journey"])
                steps.append((on_preempt, f["journey"], f["reason"]))
        steps += [("pause", f["journey"], f["reason"]) for f in session.of_type("pause")]
        chosen: dict[str, tuple[ActionKind, list[str]]] = {}
        for kind, journey, reason in steps:
            current = chosen.setdefault(journey, (kind, []))
            if current[0] == kind and reason not in current[1]:
                current[1].append(reason)
        return [
            Action(kind=kind, journey=journey, reason="; ".join(reasons))
            for journey, (kind, reasons) in chosen.items()
        ]

    def _on_preempt(self, request: DecisionRequest, name: str) -> Literal["exit", "pause"]:
        """What the pre-empted journey's own definition says: exit (default) or pause."""
        pinned = next((a for a in request.active_enrollments if a.journey == name), None)
        journey = self._definition(name, pinned.version if pinned else None)
        return journey.spec.on_preempt if journey else "exit"

    @staticmethod
    def _enroll_action(request: DecisionRequest, winner: Fact) -> Action:
        """Enroll in the latest version of a journey whose trigger fired and nothing vetoed."""
        return Action(
            kind="enroll",
            journey=winner["journey"],
            version=winner["version"],
            priority=winner["priority"],
            exclusivity_group=winner["group"] or None,
            reason=f"triggered by {describe_occurrence(request.occurrence)}",
        )

    @staticmethod
    def _veto_actions(vetoes: list[Fact]) -> list[Action]:
        """One refusal or suppression per journey; all its reasons, first kind wins."""
        by_journey: dict[str, list[Fact]] = {}
        for f in vetoes:
            by_journey.setdefault(f["journey"], []).append(f)
        return [
            Action(
                kind=facts[0]["kind"],
                journey=journey,
                reason="; ".join(dict.fromkeys(f["reason"] for f in facts)),
            )
            for journey, facts in by_journey.items()
        ]

    def _send_action(self, session: _Session, send: SendRequested) -> Action:
        """Suppress beats defer beats allow; a deferral waits for the cap and quiet hours."""
        blocks = session.of_type("send_block")
        if blocks:
            reason = "; ".join(dict.fromkeys(f["reason"] for f in blocks))
            return Action(kind="suppress", journey=send.journey, reason=reason)
        defers = session.of_type("defer")
        if defers:
            until = self._send_after(session.request, send, {f["cause"] for f in defers})
            reason = "; ".join(f["reason"] for f in defers)
            return Action(kind="defer", journey=send.journey, until=until, reason=reason)
        why = "transactional" if send.transactional else "no policy objected"
        return Action(kind="allow", journey=send.journey, reason=why)

    def _send_after(
        self, request: DecisionRequest, send: SendRequested, causes: set[str]
    ) -> datetime:
        """The exact first moment the send satisfies both the cap and quiet hours."""
        quiet = self.policies.quiet_hours
        quiet_applies = send.channel in quiet.channels and not (
            send.transactional and quiet.transactional_exempt
        )
        return earliest_send_at(
            self.policies,
            request.now,
            ZoneInfo(request.time_zone),
            request.recent_marketing_sends,
            capped="cap" in causes,
            quiet=quiet_applies,
        )


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
    with _LOCK:
        engine = _ENGINES.get(version)
        if engine is None:
            engine = RulesEngine(journeys, policies)
            _warm_up(engine)
            _ENGINES[version] = engine
        return engine
