"""The CRM queue, the CRM ids revops keeps, and the sync's status.

- ``crm_queue``: one row per contact waiting to be pushed, holding the latest snapshot its
  workflow sent and every reason since the last push (a burst of changes is one push). Each
  enqueue bumps ``version``; a push removes the row only if no newer snapshot arrived meanwhile.
  A failed push keeps the row with its error and a later ``next_attempt_at`` (back-off).
- ``crm_task_queue``: handoff tasks for the CRM, once per idempotency key, until pushed.
- ``crm_links``: the CRM id of each pushed contact (matched by email the first time).
- ``crm_status``: per provider, the last sync, the last error, totals, the API headroom
  (``revops crm status``) and how far the CRM's changes were read (``cursor``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from crm.records import ContactRecord, CrmSnapshot, CrmTask
from store.repo import Store, insert_ignore
from store.schema import Base, ContactRow, JsonType

__all__ = ["CrmBook", "CrmLinkRow", "CrmQueueRow", "CrmStatus", "CrmStatusRow", "CrmTaskRow"]

_AT = DateTime(timezone=True)


class CrmQueueRow(Base):
    """A contact waiting to be pushed: its latest snapshot and the reasons gathered."""

    __tablename__ = "crm_queue"

    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonType)
    reasons: Mapped[list[str]] = mapped_column(JsonType, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    queued_at: Mapped[datetime] = mapped_column(_AT)
    next_attempt_at: Mapped[datetime] = mapped_column(_AT, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class CrmTaskRow(Base):
    """A handoff task for the CRM, kept until pushed."""

    __tablename__ = "crm_task_queue"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    task: Mapped[dict[str, Any]] = mapped_column(JsonType)
    queued_at: Mapped[datetime] = mapped_column(_AT)
    pushed_at: Mapped[datetime | None] = mapped_column(_AT, index=True)


class CrmLinkRow(Base):
    """The CRM's id for a contact, stored after its first push."""

    __tablename__ = "crm_links"

    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    crm_id: Mapped[str] = mapped_column(String(64), index=True)
    synced_at: Mapped[datetime] = mapped_column(_AT)
    pushes: Mapped[int] = mapped_column(Integer, default=1)


class CrmStatusRow(Base):
    """The sync's state per provider."""

    __tablename__ = "crm_status"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(_AT)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(_AT)
    pushed: Mapped[int] = mapped_column(Integer, default=0)
    throttled: Mapped[int] = mapped_column(Integer, default=0)
    headroom: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    cursor: Mapped[datetime | None] = mapped_column(_AT)
    """How far the CRM's changes were read (Salesforce: the last SystemModstamp seen)."""


@dataclass(frozen=True)
class CrmStatus:
    """What ``revops crm status`` prints."""

    provider: str
    backlog: int
    failing: int
    oldest_queued_at: datetime | None
    tasks_waiting: int
    linked: int
    last_sync_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pushed: int
    throttled: int
    headroom: dict[str, Any]
    cursor: datetime | None = None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CrmBook:
    """The CRM queue, links and status in one store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sessions = store._sessions

    # ---- the queue -------------------------------------------------------------------------

    def enqueue(self, snapshot: CrmSnapshot, now: datetime | None = None) -> None:
        """Queue the contact's push with this snapshot (merged with a waiting one)."""
        now = now or datetime.now(UTC)
        for _ in range(3):  # two enqueues racing on a new row: the loser updates
            try:
                with self._sessions.begin() as session:
                    self._enqueue(session, snapshot, now)
                return
            except IntegrityError:
                continue
        raise RuntimeError("crm_queue: could not enqueue after 3 attempts")

    def _enqueue(self, session: Session, snapshot: CrmSnapshot, now: datetime) -> None:
        row = session.get(CrmQueueRow, snapshot.contact_id, with_for_update=True)
        body = snapshot.model_dump(mode="json")
        if row is None:
            session.add(
                CrmQueueRow(
                    contact_id=snapshot.contact_id,
                    snapshot=body,
                    reasons=list(snapshot.reasons),
                    version=1,
                    queued_at=now,
                    next_attempt_at=now,
                    attempts=0,
                )
            )
            return
        reasons = list(dict.fromkeys([*row.reasons, *snapshot.reasons]))
        session.execute(
            update(CrmQueueRow)
            .where(CrmQueueRow.contact_id == snapshot.contact_id)
            .values(snapshot=body, reasons=reasons, version=CrmQueueRow.version + 1)
        )

    def enqueue_all(self, snapshots: Iterable[CrmSnapshot]) -> int:
        """Queue many (``revops crm resync``, an import); returns how many."""
        count = 0
        for snapshot in snapshots:
            self.enqueue(snapshot)
            count += 1
        return count

    def due(self, limit: int, now: datetime | None = None) -> list[tuple[CrmSnapshot, int]]:
        """Up to ``limit`` queued snapshots whose attempt is due, oldest first, with versions."""
        now = now or datetime.now(UTC)
        with self._sessions() as session:
            rows = session.scalars(
                select(CrmQueueRow)
                .where(CrmQueueRow.next_attempt_at <= now)
                .order_by(CrmQueueRow.queued_at, CrmQueueRow.contact_id)
                .limit(limit)
            ).all()
            return [(self._snapshot(row), row.version) for row in rows]

    @staticmethod
    def _snapshot(row: CrmQueueRow) -> CrmSnapshot:
        snapshot = CrmSnapshot.model_validate(row.snapshot)
        return snapshot.model_copy(update={"reasons": list(row.reasons)})

    def records(self, snapshots: Sequence[CrmSnapshot]) -> list[ContactRecord]:
        """Each snapshot with the store's email, traits, account and CRM id."""
        ids = [s.contact_id for s in snapshots]
        with self._sessions() as session:
            contacts = {
                row.contact_id: row
                for row in session.scalars(select(ContactRow).where(ContactRow.contact_id.in_(ids)))
            }
            links = dict(
                session.execute(
                    select(CrmLinkRow.contact_id, CrmLinkRow.crm_id).where(
                        CrmLinkRow.contact_id.in_(ids)
                    )
                ).all()
            )
        records = []
        for snapshot in snapshots:
            row = contacts.get(snapshot.contact_id)
            records.append(
                ContactRecord(
                    snapshot=snapshot,
                    email=row.email if row else None,
                    traits=dict(row.traits or {}) if row else {},
                    account_id=row.account_id if row else None,
                    crm_id=links.get(snapshot.contact_id),
                )
            )
        return records

    def pushed(
        self,
        provider: str,
        taken: Sequence[tuple[CrmSnapshot, int]],
        crm_ids: dict[str, str],
        now: datetime | None = None,
    ) -> None:
        """The batch is in the CRM: keep the CRM ids, drop rows no newer snapshot replaced."""
        now = now or datetime.now(UTC)
        with self._sessions.begin() as session:
            for snapshot, version in taken:
                session.execute(
                    delete(CrmQueueRow).where(
                        CrmQueueRow.contact_id == snapshot.contact_id,
                        CrmQueueRow.version == version,
                    )
                )
            for contact_id, crm_id in crm_ids.items():
                self._link(session, provider, contact_id, crm_id, now)

    @staticmethod
    def _link(session: Session, provider: str, contact_id: str, crm_id: str, now: datetime) -> None:
        row = session.get(CrmLinkRow, contact_id)
        if row is None:
            session.add(
                CrmLinkRow(
                    contact_id=contact_id, provider=provider, crm_id=crm_id, synced_at=now, pushes=1
                )
            )
            return
        row.crm_id, row.provider, row.synced_at = crm_id, provider, now
        row.pushes = (row.pushes or 0) + 1

    def failed(self, contact_ids: Sequence[str], error: str, now: datetime | None = None) -> None:
        """Keep the rows with the error; retry after a back-off growing with the attempts."""
        now = now or datetime.now(UTC)
        with self._sessions.begin() as session:
            rows = session.scalars(
                select(CrmQueueRow).where(CrmQueueRow.contact_id.in_(list(contact_ids)))
            ).all()
            for row in rows:
                row.attempts += 1
                row.last_error = error[:1000]
                row.next_attempt_at = now + timedelta(seconds=min(5 * 2**row.attempts, 3600))

    def link(self, provider: str, links: dict[str, str], now: datetime | None = None) -> None:
        """Store CRM ids known before any push (``contacts import``): the first push then
        updates that record. No push is counted; an id revops pushed to is replaced."""
        now = now or datetime.now(UTC)
        with self._sessions.begin() as session:
            for contact_id, crm_id in links.items():
                row = session.get(CrmLinkRow, contact_id)
                if row is None:
                    session.add(
                        CrmLinkRow(
                            contact_id=contact_id,
                            provider=provider,
                            crm_id=crm_id,
                            synced_at=now,
                            pushes=0,
                        )
                    )
                elif row.crm_id != crm_id:
                    row.crm_id, row.provider = crm_id, provider

    def link_of(self, contact_id: str) -> dict[str, Any] | None:
        """The contact's CRM link as ``contacts show`` prints it (None: none)."""
        with self._sessions() as session:
            row = session.get(CrmLinkRow, contact_id)
            if row is None:
                return None
            synced = _aware(row.synced_at) if row.pushes else None
            return {
                "provider": row.provider,
                "crm_id": row.crm_id,
                "pushes": row.pushes or 0,
                "synced_at": synced.isoformat() if synced else None,
            }

    def crm_id(self, contact_id: str) -> str | None:
        """The CRM id stored for the contact (None: never pushed)."""
        with self._sessions() as session:
            row = session.get(CrmLinkRow, contact_id)
            return row.crm_id if row else None

    def contact_of(self, crm_id: str) -> str | None:
        """The contact a CRM id belongs to (the CRM's webhooks name their ids)."""
        with self._sessions() as session:
            found = session.scalar(
                select(CrmLinkRow.contact_id).where(CrmLinkRow.crm_id == crm_id).limit(1)
            )
            return str(found) if found else None

    # ---- tasks -----------------------------------------------------------------------------

    def enqueue_task(self, task: CrmTask, now: datetime | None = None) -> bool:
        """Queue a handoff task once per key; False when it was queued before."""
        now = now or datetime.now(UTC)
        row = {
            "key": task.key,
            "contact_id": task.contact_id,
            "task": task.model_dump(mode="json"),
            "queued_at": now,
            "pushed_at": None,
        }
        with self._sessions.begin() as session:
            return insert_ignore(session, CrmTaskRow, [row]) == 1

    def waiting_tasks(self, limit: int = 100) -> list[CrmTask]:
        """Tasks not yet pushed whose contact has a CRM id, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(CrmTaskRow)
                .join(CrmLinkRow, CrmLinkRow.contact_id == CrmTaskRow.contact_id)
                .where(CrmTaskRow.pushed_at.is_(None))
                .order_by(CrmTaskRow.queued_at)
                .limit(limit)
            ).all()
            return [CrmTask.model_validate(row.task) for row in rows]

    def links(self, contact_ids: Iterable[str]) -> dict[str, str]:
        """CRM ids of these contacts."""
        with self._sessions() as session:
            rows = session.execute(
                select(CrmLinkRow.contact_id, CrmLinkRow.crm_id).where(
                    CrmLinkRow.contact_id.in_(list(contact_ids))
                )
            ).all()
            return {str(a): str(b) for a, b in rows}

    def tasks_pushed(self, keys: Sequence[str], now: datetime | None = None) -> None:
        """Mark tasks pushed."""
        if not keys:
            return
        with self._sessions.begin() as session:
            session.execute(
                update(CrmTaskRow)
                .where(CrmTaskRow.key.in_(list(keys)))
                .values(pushed_at=now or datetime.now(UTC))
            )

    # ---- status ----------------------------------------------------------------------------

    def record_sync(
        self,
        provider: str,
        *,
        pushed: int = 0,
        throttled: int = 0,
        headroom: dict[str, Any] | None = None,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Add a sync round to the provider's status."""
        now = now or datetime.now(UTC)
        for _ in range(3):
            try:
                with self._sessions.begin() as session:
                    row = session.get(CrmStatusRow, provider, with_for_update=True)
                    if row is None:
                        row = CrmStatusRow(provider=provider, pushed=0, throttled=0, headroom={})
                        session.add(row)
                    row.pushed = (row.pushed or 0) + pushed
                    row.throttled = (row.throttled or 0) + throttled
                    if headroom is not None:
                        row.headroom = headroom
                    if error is None:
                        row.last_sync_at = now
                    else:
                        row.last_error, row.last_error_at = error[:1000], now
                return
            except IntegrityError:
                continue

    def status(self, provider: str) -> CrmStatus:
        """Backlog, errors, links and the provider's last sync."""
        with self._sessions() as session:
            backlog, oldest = session.execute(
                select(func.count(), func.min(CrmQueueRow.queued_at))
            ).one()
            failing = session.scalar(
                select(func.count()).select_from(CrmQueueRow).where(CrmQueueRow.attempts > 0)
            )
            tasks = session.scalar(
                select(func.count()).select_from(CrmTaskRow).where(CrmTaskRow.pushed_at.is_(None))
            )
            linked = session.scalar(select(func.count()).select_from(CrmLinkRow))
            row = session.get(CrmStatusRow, provider)
            return CrmStatus(
                provider=provider,
                backlog=int(backlog or 0),
                failing=int(failing or 0),
                oldest_queued_at=_aware(oldest),
                tasks_waiting=int(tasks or 0),
                linked=int(linked or 0),
                last_sync_at=_aware(row.last_sync_at) if row else None,
                last_error=row.last_error if row else None,
                last_error_at=_aware(row.last_error_at) if row else None,
                pushed=int(row.pushed or 0) if row else 0,
                throttled=int(row.throttled or 0) if row else 0,
                headroom=dict(row.headroom or {}) if row else {},
                cursor=_aware(row.cursor) if row else None,
            )

    def cursor(self, provider: str) -> datetime | None:
        """How far the provider's changes were read."""
        with self._sessions() as session:
            row = session.get(CrmStatusRow, provider)
            return _aware(row.cursor) if row else None

    def set_cursor(self, provider: str, cursor: datetime) -> None:
        """Move the read position forward (never back)."""
        with self._sessions.begin() as session:
            row = session.get(CrmStatusRow, provider, with_for_update=True)
            if row is None:
                session.add(
                    CrmStatusRow(
                        provider=provider, pushed=0, throttled=0, headroom={}, cursor=cursor
                    )
                )
                return
            current = _aware(row.cursor)
            if current is None or cursor > current:
                row.cursor = cursor
