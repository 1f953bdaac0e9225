"""Rule decisions with their traces, kept for ``revops contacts why`` and audits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from models.decisions import Decision
from store.repo import Store, insert_ignore
from store.schema import Base, BigId, JsonType

__all__ = ["DecisionLog", "DecisionRow"]


class DecisionRow(Base):
    """One decision: what happened, the actions, the rules that fired, in plain words too."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("contact_id", "decided_at", "occurrence", name="uq_decision"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    occurrence: Mapped[str] = mapped_column(Text)
    ruleset_version: Mapped[str] = mapped_column(String(64))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    explanation: Mapped[list[str]] = mapped_column(JsonType, default=list)


class DecisionLog:
    """Decisions over the store's engine; writes are idempotent."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def record(self, decision: Decision, explanation: list[str]) -> None:
        """Keep one decision (a retried activity writes nothing twice)."""
        self.record_all([(decision, explanation)])

    def record_all(self, decisions: Sequence[tuple[Decision, list[str]]]) -> None:
        """Keep a step's decisions in one transaction (one commit, not one per decision)."""
        rows = [
            {
                "contact_id": decision.contact_id,
                "decided_at": decision.decided_at,
                "occurrence": decision.occurrence,
                "ruleset_version": decision.ruleset_version,
                "actions": [a.model_dump(mode="json") for a in decision.actions],
                "trace": [t.model_dump(mode="json") for t in decision.trace],
                "explanation": explanation,
            }
            for decision, explanation in decisions
        ]
        if not rows:
            return
        with self._sessions.begin() as session:
            insert_ignore(session, DecisionRow, rows)

    def recent(self, contact_id: str, limit: int = 10) -> list[DecisionRow]:
        """The contact's latest decisions, newest first."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(DecisionRow)
                    .where(DecisionRow.contact_id == contact_id)
                    .order_by(DecisionRow.decided_at.desc(), DecisionRow.id.desc())
                    .limit(limit)
                )
            )
