"""What the store keeps after an erasure: the record of it, refused ids, suppressed addresses.

An erased person's rows are gone (``store.erase``), but three promises outlive them, and each
is kept without personal data, as a keyed hash (HMAC with the installation's id secret, so
a list of hashes cannot be reversed by hashing a dictionary of addresses):

- the **erasure record** (``erasures``): who asked, when, why, and the hash of the user id, so
  a second request is answered "already erased" and an audit can prove the request was met;
- the **refused ids** (``erased_ids``): the user id and anonymous ids of the person; an event
  arriving later for one of them is refused at accept (docs/privacy.md, "Later events");
- the **suppressed addresses** (``suppressed_addresses``): the email address and phone number,
  so a new profile carrying them (a re-import, a new sign-up) is never emailed or texted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.schema import Base, BigId, JsonType

__all__ = [
    "ERASED_ID_PURPOSE",
    "ConsentChangeRow",
    "ErasedIdRow",
    "ErasureRow",
    "SuppressedAddressRow",
    "erased_id_hashes",
    "keyed_hash",
    "normalise_address",
    "record_erasure",
]


ERASED_ID_PURPOSE = "erased-id"
"""The purpose a refused id is hashed for (``keyed_hash``)."""


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` for ``purpose`` (hex): stable, not reversible without the key."""
    key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def normalise_address(kind: str, value: str) -> str:
    """The form an address is hashed in: emails trimmed and lower-cased, phones digits only."""
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit())
    return value.strip().lower()


class ErasureRow(Base):
    """One erasure request and what it removed (no personal data: hashes and counts)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject_hash: Mapped[str] = mapped_column(String(64), unique=True)
    erased_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    rows_removed: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    workflows_deleted: Mapped[int] = mapped_column(Integer, default=0)


class ErasedIdRow(Base):
    """A user id or anonymous id of an erased person (hashed): its later events are refused."""

    __tablename__ = "erased_ids"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsentChangeRow(Base):
    """One change of consent for a purpose: given or refused, when, from where, by which event."""

    __tablename__ = "consent_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(200), default="")
    message_id: Mapped[str] = mapped_column(String(128), default="")


class SuppressedAddressRow(Base):
    """An address never to be used again (hashed): email or phone of an erased person."""

    __tablename__ = "suppressed_addresses"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass
class ErasureTicket:
    """The erasure record as the caller needs it; ``already`` when it existed before."""

    subject_hash: str
    erased_by: str
    reason: str
    requested_at: datetime
    completed_at: datetime | None
    already: bool
    rows_removed: dict[str, int] = field(default_factory=dict)
    workflows_deleted: int = 0


def _ticket(row: ErasureRow, *, already: bool) -> ErasureTicket:
    return ErasureTicket(
        subject_hash=row.subject_hash,
        erased_by=row.erased_by,
        reason=row.reason,
        requested_at=_aware(row.requested_at),
        completed_at=_aware(row.completed_at) if row.completed_at else None,
        already=already,
        rows_removed={str(k): int(v) for k, v in (row.rows_removed or {}).items()},
        workflows_deleted=row.workflows_deleted,
    )


def record_erasure(
    session: Session,
    subject_hash: str,
    *,
    erased_by: str,
    reason: str,
    id_hashes: Iterable[str],
    addresses: Iterable[tuple[str, str]],
) -> ErasureTicket:
    """Write the erasure record, the refused ids and the suppressed addresses (idempotent).

    ``addresses`` are ``(kind, hash)`` pairs. A subject erased before keeps its first record
    (who, when, why); its ids and addresses are added again if new ones were found.
    """
    now = datetime.now(UTC)
    existing = session.scalar(select(ErasureRow).where(ErasureRow.subject_hash == subject_hash))
    for id_hash in set(id_hashes):
        if session.get(ErasedIdRow, id_hash) is None:
            session.add(ErasedIdRow(id_hash=id_hash, erased_at=now))
    for kind, address_hash in set(addresses):
        if session.get(SuppressedAddressRow, address_hash) is None:
            session.add(
                SuppressedAddressRow(
                    address_hash=address_hash, kind=kind, reason="erasure", created_at=now
                )
            )
    if existing is not None:
        return _ticket(existing, already=True)
    row = ErasureRow(
        subject_hash=subject_hash,
        erased_by=erased_by[:200],
        reason=reason,
        requested_at=now,
        completed_at=None,
        contacts=0,
        rows_removed={},
        workflows_deleted=0,
    )
    session.add(row)
    session.flush()
    return _ticket(row, already=False)


def complete_erasure(
    session: Session, subject_hash: str, rows_removed: dict[str, int], workflows: int, contacts: int
) -> None:
    """Add what this pass removed to the record and stamp it complete."""
    row = session.scalar(select(ErasureRow).where(ErasureRow.subject_hash == subject_hash))
    if row is None:
        return
    merged = {str(k): int(v) for k, v in (row.rows_removed or {}).items()}
    for table, count in rows_removed.items():
        merged[table] = merged.get(table, 0) + count
    session.execute(
        update(ErasureRow)
        .where(ErasureRow.id == row.id)
        .values(
            rows_removed=merged,
            workflows_deleted=row.workflows_deleted + workflows,
            contacts=max(row.contacts, contacts),
            completed_at=datetime.now(UTC),
        )
    )


def erasure_of(session: Session, subject_hash: str) -> ErasureTicket | None:
    """The erasure record of a subject, or None."""
    row = session.scalar(select(ErasureRow).where(ErasureRow.subject_hash == subject_hash))
    return _ticket(row, already=True) if row is not None else None


def erased_id_hashes(session: Session, hashes: Iterable[str]) -> set[str]:
    """Those of ``hashes`` that belong to erased ids (one query per thousand)."""
    wanted = sorted(set(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        found.update(
            session.scalars(select(ErasedIdRow.id_hash).where(ErasedIdRow.id_hash.in_(chunk)))
        )
    return found


def suppressed(session: Session, address_hash: str) -> bool:
    """The address (hashed) belongs to an erased person."""
    return session.get(SuppressedAddressRow, address_hash) is not None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
