"""The durable_rules adapter: the only module that imports ``durable`` (unmaintained upstream).

It owns everything specific to that engine: the one host (without its dispatch threads), the
lock serialising every native call, the registry of open sessions, and the workarounds for two
memory bugs of durable_rules 2.0.28 (found with valgrind; both crashed the process):

- a new session slot's action context is not initialised and is freed on ``delete_state``, so
  deleting a session in a never-used slot in which no action ran is a double free:
  ``Ruleset.register`` primes the slots first (``_prime``);
- a join scans past its expression list when the last cross-fact comparison of an ``&`` is
  false: every cross-fact pattern is built with ``cross`` and ``register`` refuses one that is
  not (``_check_join_safety``).

What the rulebook sees is small: patterns in durable_rules' own vocabulary (``m`` for the fact a
pattern matches, ``c.alias`` for another fact of the same rule, re-exported here), a ``Ruleset``
to add rules to, each a list of aliased patterns and a derive function, and ``Ruleset.run``,
which decides statelessly: the facts are asserted under a fresh session id, rules forward-chain
synchronously (a fact derived inside an action fires its rules before the outer assert
returns), every rule that fired is traced, and the session is deleted, so one ruleset never
nears its limit of 1,024 live sessions. Replacing durable_rules means replacing this module.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Generic, TypeVar

from durable import engine as durable_engine
from durable.lang import c, m, when_all

from models.decisions import TraceEntry
from revops.errors import RevopsError

__all__ = [
    "Derive",
    "Fact",
    "RuleEvaluationError",
    "Ruleset",
    "Session",
    "any_of",
    "c",
    "cross",
    "either",
    "exact",
    "fact",
    "live_sessions",
    "m",
]

Fact = dict[str, Any]
"""A fact as the engine holds it: ``t`` (its type), ``id`` (unique per session) and fields."""

C = TypeVar("C")

_LOCK = threading.RLock()
_SESSION_IDS = itertools.count(1)
_RULESET_IDS = itertools.count(1)
_OPEN: dict[str, Session[Any]] = {}
_HOST: list[Any] = []
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


@dataclass
class Session(Generic[C]):
    """What one run gathers while its rules fire: the trace and the derived facts.

    ``context`` is what the caller observed for this run; derive functions read it.
    """

    sid: str
    context: C
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


Derive = Callable[[Session[C], dict[str, Fact]], list[Fact]]
"""A rule's action: the session and the matched facts by alias -> the facts it derives."""


def fact(fact_type: str, key: str, /, **fields: Any) -> Fact:
    """A fact; the id makes a fact derived twice (by two paths) count once."""
    return {"t": fact_type, "id": f"{fact_type}:{key}", _JOIN: 1, **fields}


def cross(test: Any, alias: str) -> Any:
    """A pattern comparing with another fact (``alias``), safe on durable_rules 2.0.28.

    Its join evaluation has a bug: when the *last* cross-fact comparison of an ``&`` is
    false, it scans past the end of the expression list, reading freed or unmapped memory
    (found with valgrind; it crashed the process after some thousands of decisions). Ending
    every such pattern with a comparison that always holds (every fact carries ``join: 1``)
    keeps the scan in bounds. Patterns with cross-fact comparisons must not use ``|``: the
    same routine skips whatever follows an ``|`` group inside an ``&``.
    """
    return test & (getattr(m, _JOIN) == getattr(getattr(c, alias), _JOIN))


def either(*tests: Any) -> Any:
    """``t1 | t2 ...``: a pattern that holds when one of ``tests`` does (at least one)."""
    return reduce(lambda a, b: a | b, tests)


def any_of(field_name: str, values: Iterable[str]) -> Any:
    """``m.field == v1 | m.field == v2 ...``; None when there are no values."""
    tests = [getattr(m, field_name) == value for value in values]
    return either(*tests) if tests else None


def _plain(matched: Any) -> Fact:
    """A matched fact as the trace shows it (without durable_rules' bookkeeping)."""
    return {k: v for k, v in dict(matched).items() if k not in ("sid", "id", _JOIN)}


_PLAIN = frozenset({str, int, bool, type(None)})


def exact(value: Any) -> bool:
    """Whether the engine holds ``value`` as it is: a float it would have to round or cap
    (``_json_safe``) is not exact, so a fact field compared for equality leaves it out."""
    return not isinstance(value, float) or value == 0 or 1e-4 <= abs(value) <= 1e15


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

    See ``cross``: a pattern comparing with another fact must be an ``&`` ending with the
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
                raise RuntimeError(f"rule {name}: pattern {alias!r} must be built with cross()")


class Ruleset(Generic[C]):
    """Rules added one by one, registered once, then run for any number of decisions."""

    def __init__(self, label: str) -> None:
        """An empty ruleset; ``label`` names it (a suffix keeps two of one label apart)."""
        self.name = f"revops_{label}_{next(_RULESET_IDS)}"
        self._rules: list[tuple[str, Any]] = []
        self._rules.append(("decision.prime", when_all(m.t == "prime")(_primed)))

    @property
    def rule_names(self) -> list[str]:
        """Every rule's name, in the order added."""
        return [name for name, _ in self._rules]

    def rule(self, name: str, *patterns: Any, derive: Derive[C]) -> None:
        """Add a rule: ``patterns`` are aliased (``c.k << ...``), one per fact it joins."""
        self._rules.append((name, when_all(*patterns)(self._action(name, derive))))

    def register(self) -> None:
        """Hand the rules to the engine (join patterns checked first) and prime its slots."""
        definitions = {f"r{i}": rule.define() for i, (_, rule) in enumerate(self._rules)}
        for (name, _), definition in zip(self._rules, definitions.values(), strict=True):
            _check_join_safety(name, definition)
        with _LOCK:
            _host().register_rulesets({self.name: definitions})
            self._prime()

    def run(
        self, context: C, facts: list[Fact], *then: Callable[[Session[C]], list[Fact]]
    ) -> Session[C]:
        """Assert ``facts``, then each later stratum's facts, in a fresh session; thread-safe.

        A stratum sees what the earlier ones derived. Raises RuleEvaluationError when a
        rule action failed.
        """
        with _LOCK:
            session = self._open(context)
            try:
                for item in facts:
                    self._assert(session, item)
                for stratum in then:
                    for item in stratum(session):
                        self._assert(session, item)
            finally:
                self._close(session)
        if session.errors:
            raise RuleEvaluationError("; ".join(session.errors))
        return session

    def _prime(self) -> None:
        """Run one action in each of the ruleset's first session slots, then free them.

        durable_rules 2.0.28 does not initialise a new session slot's action context and
        frees it on ``delete_state``: deleting a session in a never-used slot in which no
        action ran crashes the process (a double free; found with valgrind). An action
        resets the context, and freed slots keep it reset. Slots are reused last-freed
        first, and the lock keeps at most one session open, so every run uses one of these
        primed slots.
        """
        sids = [f"prime-{i}" for i in range(_PRIMED_SLOTS)]
        for sid in sids:
            _host().assert_fact(self.name, {"t": "prime", "id": "prime", "sid": sid})
        for sid in sids:
            _host().delete_state(self.name, sid)

    def _open(self, context: C) -> Session[C]:
        """A fresh session id; nothing of an earlier run can leak into this one."""
        session = Session(sid=f"d{next(_SESSION_IDS)}", context=context)
        _OPEN[session.sid] = session
        return session

    def _close(self, session: Session[C]) -> None:
        """Delete the session's native state, so the 1,024-session limit is never near."""
        # If asserting the very first fact failed, no native state exists to delete.
        with contextlib.suppress(Exception):
            _host().delete_state(self.name, session.sid)
        _OPEN.pop(session.sid, None)

    def _assert(self, session: Session[C], item: Fact) -> None:
        """Assert one fact; no matching rule simply means no decision from it."""
        try:
            state = _host().assert_fact(self.name, {**_json_safe(item), "sid": session.sid})
        except durable_engine.MessageNotHandledException:
            return
        if isinstance(state, dict) and "exception" in state and not session.errors:
            session.errors.append(str(state["exception"]).split(", traceback")[0])

    @staticmethod
    def _action(name: str, derive: Derive[C]) -> Callable[[Any], None]:
        """Wrap ``derive`` so it is traced and its facts chain into the same session."""

        def run(closure: Any) -> None:
            session = _OPEN[closure.s.sid]
            seen = {alias: _plain(matched) for alias, matched in closure._m.items()}
            try:
                derived = derive(session, seen)
            except Exception as exc:
                session.errors.append(f"rule {name}: {exc!r}")
                raise
            session.trace.append(
                TraceEntry(rule=name, facts_seen=seen, derived=[f["id"] for f in derived])
            )
            for item in derived:
                _chain(closure, session, item)

        return run


def _chain(closure: Any, session: Session[Any], item: Fact) -> None:
    """Record a derived fact and assert it into the session (its rules fire next)."""
    if not session.add(item):
        return
    with contextlib.suppress(
        durable_engine.MessageNotHandledException, durable_engine.MessageObservedException
    ):
        closure.assert_fact(dict(item))


def _primed(_: Any) -> None:
    """The action of the priming rule: deliberately not traced (see ``Ruleset._prime``)."""
    return None
