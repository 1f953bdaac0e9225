"""The dead-letter table of the tracking API: calls of a batch the gateway could not accept.

A Segment batch is accepted call by call (docs/gateway.md): the valid calls are stored, each
invalid one is answered by its index and reason and kept here, with the call as it was sent,
so an operator can see what a client keeps getting wrong (``revops events rejected``) and
replay it once fixed. Rows older than the retention are dropped as new ones arrive, so a
misbehaving client cannot grow the table without bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from revops.errors import StoreUnavailable
from store.repo import Store
from store.schema import Base, BigId, JsonType

__all__ = ["RETENTION", "RejectedBook", "RejectedCallRow", "Rejection"]

RETENTION = timedelta(days=30)
"""How long a rejected call is kept."""


class RejectedCallRow(Base):
    """One call of a batch that was refused, with why and where."""

    __tablename__ = "rejected_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    path: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(128))
    call: Mapped[Any] = mapped_column(JsonType)


@dataclass(frozen=True)
class Rejection:
    """A refused call: its index in the batch, why, and the call as sent."""

    index: int
    code: str
    field: str | None
    reason: str
    call: Any
    received_at: datetime
    path: str = "/v1/batch"

    @property
    def message_id(self) -> str | None:
        """The call's messageId when it has a usable one."""
        value = self.call.get("messageId") if isinstance(self.call, dict) else None
        return value[:128] if isinstance(value, str) else None


class RejectedBook:
    """The dead-letter table over the store's engine."""

    def __init__(self, store: Store, *, retention: timedelta = RETENTION) -> None:
        self._sessions = store._sessions
        self._retention = retention

    def keep(self, rejections: Sequence[Rejection]) -> None:
        """Store ``rejections`` and drop rows past the retention (StoreUnavailable on outage)."""
        if not rejections:
            return
        rows = [
            {
                "received_at": r.received_at,
                "path": r.path[:64],
                "position": r.index,
                "code": r.code,
                "field": r.field[:255] if r.field else None,
                "reason": r.reason,
                "message_id": r.message_id,
                "call": r.call,
            }
            for r in rejections
        ]
        oldest = min(r.received_at for r in rejections) - self._retention
        try:
            with self._sessions.begin() as session:
                session.execute(insert(RejectedCallRow), rows)
                session.execute(delete(RejectedCallRow).where(RejectedCallRow.received_at < oldest))
        except OperationalError as exc:
            raise StoreUnavailable(f"store unreachable: {exc.orig}") from exc

    def recent(self, *, limit: int = 50, since: datetime | None = None) -> list[Rejection]:
        """The latest rejections, newest first."""
        query = select(RejectedCallRow).order_by(RejectedCallRow.id.desc()).limit(limit)
        if since is not None:
            query = query.where(RejectedCallRow.received_at >= since)
        with self._sessions() as session:
            return [_rejection(row) for row in session.scalars(query)]


def _rejection(row: RejectedCallRow) -> Rejection:
    moment = row.received_at
    return Rejection(
        index=row.position,
        code=row.code,
        field=row.field,
        reason=row.reason,
        call=row.call,
        received_at=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
        path=row.path,
    )
