"""The verdict: what the rules derived, turned into the decision's ordered actions (plain Python).

The rules derive facts (``triggered``, ``veto``, ``exit``, ``pause``, ``resume``, ``preempt``,
``send_block``, ``defer``, ``signal``); this is the third stratum that reads them once the
engine is done. Journeys that triggered and were not vetoed are enrolled, and only they
pre-empt; each journey gets one action whose kind is the strongest (exit over pause over
resume, the first veto kind) with every reason of that kind; a pause names who paused it (the
pre-empting journey, a hand-raiser, a hold), a resume follows the journey's ``on_resume``
(resume, or exit); a send gets one verdict: suppress beats defer beats allow, and a deferral
carries the exact moment the send satisfies the cap and quiet hours. Actions come in a fixed
order: exits, pauses and resumes, enrollments, refusals and suppressions, the send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from models.decisions import (
    Action,
    ActionKind,
    Decision,
    DecisionRequest,
    SendRequested,
    describe_occurrence,
)
from rules.adapter import Fact, Session
from rules.catalog import Catalog, CompiledJourney
from rules.facts import Observation
from rules.policies import Policies, earliest_send_at

__all__ = ["assemble"]


def assemble(
    session: Session[Observation], catalog: Catalog, policies: Policies, version: str
) -> Decision:
    """The decision made in ``session`` by the ruleset ``version`` of these definitions."""
    request = session.context.request
    vetoes = session.of_type("veto")
    vetoed = {f["journey"] for f in vetoes}
    winners = [f for f in session.of_type("triggered") if f["journey"] not in vetoed]
    actions = _leave_actions(session, catalog, {w["journey"] for w in winners})
    actions += [_enroll_action(request, w) for w in winners]
    actions += _veto_actions(vetoes)
    if isinstance(request.occurrence, SendRequested):
        actions.append(_send_action(session, policies, request.occurrence))
    return Decision(
        contact_id=request.contact_id,
        decided_at=request.now,
        occurrence_kind=request.occurrence.kind,
        occurrence=describe_occurrence(request.occurrence),
        actions=actions,
        signals=[f["name"] for f in session.of_type("signal")],
        trace=session.trace,
        ruleset_version=version,
    )


def _leave_actions(
    session: Session[Observation], catalog: Catalog, winners: set[str]
) -> list[Action]:
    """Exits, pre-emptions by an actual winner, pauses, resumes: one action per journey.

    The strongest kind wins (exit over pause over resume); the reasons of that kind are all
    kept; a pause says who paused it.
    """
    request = session.context.request
    steps: list[tuple[ActionKind, str, str, str | None]] = [
        ("exit", f["journey"], f["reason"], None) for f in session.of_type("exit")
    ]
    for f in session.of_type("preempt"):
        if f["by"] in winners:
            on_preempt = _on_preempt(request, catalog, f["journey"])
            steps.append((on_preempt, f["journey"], f["reason"], f["by"]))
    for f in session.of_type("pause"):
        by = _pauser(request, catalog, f["journey"], f.get("by"), winners)
        steps.append(("pause", f["journey"], f["reason"], by))
    for f in session.of_type("resume"):
        steps.append((_on_resume(request, catalog, f["journey"]), f["journey"], f["reason"], None))
    chosen: dict[str, tuple[ActionKind, list[str], str | None]] = {}
    for kind, journey, reason, by in steps:
        current = chosen.setdefault(journey, (kind, [], by))
        if current[0] == kind and reason not in current[1]:
            current[1].append(reason)
    return [
        Action(
            kind=kind,
            journey=journey,
            reason="; ".join(reasons),
            by=by if kind == "pause" else None,
        )
        for journey, (kind, reasons, by) in chosen.items()
    ]


def _pinned(request: DecisionRequest, catalog: Catalog, name: str) -> CompiledJourney | None:
    """The version of ``name`` the contact runs (the latest when it is not running)."""
    pinned = next((a for a in request.active_enrollments if a.journey == name), None)
    return catalog.definition(name, pinned.version if pinned else None)


def _pauser(
    request: DecisionRequest, catalog: Catalog, name: str, cause: str | None, winners: set[str]
) -> str | None:
    """Who holds a paused journey: a journey enrolled now in its group, else the cause."""
    paused = _pinned(request, catalog, name)
    group = paused.group if paused else ""
    for winner in sorted(winners):
        journey = catalog.latest.get(winner)
        if group and journey is not None and journey.group == group:
            return winner
    return cause


def _on_preempt(request: DecisionRequest, catalog: Catalog, name: str) -> Literal["exit", "pause"]:
    """What the pre-empted journey's own definition says: exit (default) or pause."""
    journey = _pinned(request, catalog, name)
    return journey.spec.on_preempt if journey else "exit"


def _on_resume(request: DecisionRequest, catalog: Catalog, name: str) -> Literal["exit", "resume"]:
    """What a paused journey's definition says once it may go on: resume (default) or exit."""
    journey = _pinned(request, catalog, name)
    return journey.spec.on_resume if journey else "resume"


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


def _send_action(session: Session[Observation], policies: Policies, send: SendRequested) -> Action:
    """Suppress beats defer beats allow; a deferral waits for the cap and quiet hours."""
    blocks = session.of_type("send_block")
    if blocks:
        reason = "; ".join(dict.fromkeys(f["reason"] for f in blocks))
        return Action(kind="suppress", journey=send.journey, reason=reason)
    defers = session.of_type("defer")
    if defers:
        causes = {f["cause"] for f in defers}
        until = _send_after(session.context.request, policies, send, causes)
        reason = "; ".join(f["reason"] for f in defers)
        return Action(kind="defer", journey=send.journey, until=until, reason=reason)
    why = "transactional" if send.transactional else "no policy objected"
    return Action(kind="allow", journey=send.journey, reason=why)


def _send_after(
    request: DecisionRequest, policies: Policies, send: SendRequested, causes: set[str]
) -> datetime:
    """The exact first moment the send satisfies both the cap and quiet hours."""
    quiet = policies.quiet_hours
    quiet_applies = send.channel in quiet.channels and not (
        send.transactional and quiet.transactional_exempt
    )
    return earliest_send_at(
        policies,
        request.now,
        ZoneInfo(request.time_zone),
        request.recent_marketing_sends,
        capped="cap" in causes,
        quiet=quiet_applies,
    )
