"""The one durable owner of round-robin state, and every routing decision with its trace.

Fairness under concurrency needs routing decisions applied one at a time against the same
``RoutingState`` (per-team cursor, open leads per rep). That happens here, in one database
transaction per decision: the transaction's first statement updates the state row, which takes
the row lock on PostgreSQL and the write lock on SQLite, so concurrent handoffs queue for a
few milliseconds instead of reading the same cursor. Inside it: read the state, decide (pure
``handoff.routing``), store the new state and the decision. All or nothing, so open-lead counts
and the decision log never disagree.

Each decision is keyed ``(handoff_id, step)``: a retried activity finds its earlier decision
and returns it, so a retry neither moves the cursor twice nor counts a lead twice. Releasing a
lead (accepted, rejected, closed) is keyed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from handoff.routing import (
    RoutingConfig,
    RoutingDecision,
    RoutingInput,
    RoutingState,
    apply_decision,
    next_rep_for_reassignment,
    release_lead,
    route,
)
from store.repo import Store, insert_ignore
from store.schema import Base, BigId, JsonType

__all__ = ["RoutingBook", "RoutingDecisionRow", "RoutingStateRow"]

T = TypeVar("T")

RELEASE_STEP = "release"
_LOCK_RETRIES = 20


class RoutingStateRow(Base):
    """Round-robin cursors and open-lead counts of one routing definition (``name``)."""

    __tablename__ = "routing_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursors: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    open_leads: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RoutingDecisionRow(Base):
    """One step of one handoff: an assignment, a reassignment or the release of the lead."""

    __tablename__ = "routing_decisions"
    __table_args__ = (UniqueConstraint("handoff_id", "step", name="uq_routing_decision_step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    handoff_id: Mapped[str] = mapped_column(String(128))
    step: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    rep_id: Mapped[str] = mapped_column(String(128), index=True)
    method: Mapped[str] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(128))
    config_version: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")
    trace: Mapped[list[str]] = mapped_column(JsonType, default=list)
    decision: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class RoutingBook:
    """Routing state and decisions over the store's engine."""

    def __init__(self, store: Store, name: str = "default") -> None:
        self._sessions = store._sessions
        self._name = name
        self._ready = False

    # ---- decisions -----------------------------------------------------------------------

    def assign(
        self,
        config: RoutingConfig,
        lead: RoutingInput,
        now: datetime,
        *,
        handoff_id: str,
        step: int,
        tried: list[str] | None = None,
        fresh: bool = False,
    ) -> RoutingDecision:
        """Route (step 0, or ``fresh``: a new stage's first owner) or reassign (step > 0,
        ``tried`` naming every owner so far) once.

        A reassignment releases the previous owner's open lead in the same transaction.
        """

        def decide(session: Session) -> RoutingDecision:
            earlier = _decision_row(session, handoff_id, str(step))
            if earlier is not None:
                return RoutingDecision.model_validate(earlier.decision)
            state = self._read(session)
            if step == 0 or fresh:
                decision = route(config, lead, state, now)
            else:
                decision = next_rep_for_reassignment(config, lead, state, now, tried=tried or [])
                state = release_lead(state, decision.reassigned_from or "")
            self._write(session, apply_decision(state, decision))
            reason = "assigned" if step == 0 or fresh else "reassigned after a second SLA breach"
            if fresh:
                reason = f"assigned for the {lead.stage.upper()} stage"
            session.add(_row(handoff_id, str(step), decision, reason))
            return decision

        return self._locked(decide)

    def release(
        self, handoff_id: str, rep_id: str, reason: str, at: datetime, *, stage: str = "sdr"
    ) -> bool:
        """Free one of ``rep_id``'s open leads once per handoff and stage (the SDR's, then the
        AE's); False if already released."""
        step = RELEASE_STEP if stage == "sdr" else f"{RELEASE_STEP}-{stage}"

        def free(session: Session) -> bool:
            if _decision_row(session, handoff_id, step) is not None:
                return False
            self._write(session, release_lead(self._read(session), rep_id))
            session.add(
                RoutingDecisionRow(
                    handoff_id=handoff_id,
                    step=step,
                    contact_id=_contact_of(session, handoff_id),
                    rep_id=rep_id,
                    method="release",
                    team=None,
                    config_version="",
                    decided_at=at,
                    reason=reason,
                    trace=[f"released: {reason}"],
                    decision={},
                )
            )
            return True

        return self._locked(free)

    # ---- reads ---------------------------------------------------------------------------

    def state(self) -> RoutingState:
        """The current cursors and open-lead counts."""
        with self._sessions() as session:
            return self._read(session)

    def decisions(
        self, contact_id: str | None = None, handoff_id: str | None = None
    ) -> list[RoutingDecisionRow]:
        """Decisions (and releases), oldest first."""
        query = select(RoutingDecisionRow).order_by(RoutingDecisionRow.id)
        if contact_id is not None:
            query = query.where(RoutingDecisionRow.contact_id == contact_id)
        if handoff_id is not None:
            query = query.where(RoutingDecisionRow.handoff_id == handoff_id)
        with self._sessions() as session:
            return list(session.scalars(query))

    # ---- internals -----------------------------------------------------------------------

    def _locked(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` holding the state row's lock; SQLite's busy moments are retried."""
        self._ensure_row()
        for attempt in range(_LOCK_RETRIES):
            try:
                with self._sessions.begin() as session:
                    session.execute(
                        update(RoutingStateRow)
                        .where(RoutingStateRow.name == self._name)
                        .values(revision=RoutingStateRow.revision + 1, updated_at=_now())
                    )
                    return work(session)
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or attempt == _LOCK_RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _ensure_row(self) -> None:
        if self._ready:
            return
        with self._sessions.begin() as session:
            row = {
                "name": self._name,
                "cursors": {},
                "open_leads": {},
                "revision": 0,
                "updated_at": _now(),
            }
            insert_ignore(session, RoutingStateRow, [row])
        self._ready = True

    def _read(self, session: Session) -> RoutingState:
        row = session.get(RoutingStateRow, self._name, populate_existing=True)
        if row is None:
            return RoutingState()
        return RoutingState(
            cursors={str(k): str(v) for k, v in (row.cursors or {}).items()},
            open_leads={str(k): int(v) for k, v in (row.open_leads or {}).items()},
        )

    def _write(self, session: Session, state: RoutingState) -> None:
        session.execute(
            update(RoutingStateRow)
            .where(RoutingStateRow.name == self._name)
            .values(cursors=dict(state.cursors), open_leads=dict(state.open_leads))
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _decision_row(session: Session, handoff_id: str, step: str) -> RoutingDecisionRow | None:
    query = select(RoutingDecisionRow).where(
        RoutingDecisionRow.handoff_id == handoff_id, RoutingDecisionRow.step == step
    )
    return session.scalar(query)


def _contact_of(session: Session, handoff_id: str) -> str:
    query = select(RoutingDecisionRow.contact_id).where(RoutingDecisionRow.handoff_id == handoff_id)
    return session.scalar(query.limit(1)) or ""


def _row(handoff_id: str, step: str, decision: RoutingDecision, reason: str) -> RoutingDecisionRow:
    return RoutingDecisionRow(
        handoff_id=handoff_id,
        step=step,
        contact_id=decision.contact_id,
        rep_id=decision.rep_id,
        method=decision.method,
        team=decision.team,
        config_version=decision.config_version,
        decided_at=decision.decided_at,
        reason=reason,
        trace=list(decision.trace),
        decision=decision.model_dump(mode="json"),
    )
