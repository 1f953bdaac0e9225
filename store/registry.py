"""The definition registry: one versioned life cycle for every kind of definition.

Journeys, lists, demand states, scoring models, lifecycle rules, policies, routing and the
handoff settings are all YAML documents with the same life cycle: validate, deploy (a new
numbered version, recorded in a change log with who, when and the diff), show, roll back. One
table serves them all, so every kind gets the same audit trail and the same rollback semantics.

Rollback makes the highest version below the active one active again; deploying a body identical
to the active one is a no-op (no new version).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from revops.errors import NotFound, ValidationFailed
from store.repo import Store
from store.schema import Base, BigId, JsonType

__all__ = [
    "DefinitionChangeRow",
    "DefinitionRow",
    "DeployResult",
    "Registry",
    "digest_of",
]


class DefinitionRow(Base):
    """One version of one definition."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("kind", "name", "version", name="uq_definition_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    digest: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DefinitionChangeRow(Base):
    """The change log: every deploy and rollback, in order; the last one per name is active."""

    __tablename__ = "definition_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(128))
    diff: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def digest_of(body: dict[str, Any]) -> str:
    """Content hash of a definition body (key order does not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _yaml(body: dict[str, Any] | None) -> list[str]:
    if body is None:
        return []
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True).splitlines(keepends=True)


def diff_bodies(old: dict[str, Any] | None, new: dict[str, Any], label: str) -> str:
    """A unified diff of two bodies as YAML."""
    return "".join(
        difflib.unified_diff(_yaml(old), _yaml(new), fromfile=f"{label} (before)", tofile=label)
    )


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did: the active version, whether it is new, and the diff."""

    version: int
    changed: bool
    diff: str


class Registry:
    """Versioned definitions over the store's engine."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions  # same engine and sessions as the store

    def deploy(
        self, kind: str, name: str, body: dict[str, Any], *, author: str, comment: str = ""
    ) -> DeployResult:
        """Make ``body`` the active version of ``kind/name`` (new version unless unchanged)."""
        with self._sessions.begin() as session:
            active = self._active_row(session, kind, name)
            if active is not None and active.digest == digest_of(body):
                return DeployResult(active.version, changed=False, diff="")
            latest = session.scalar(
                select(func.max(DefinitionRow.version)).where(
                    DefinitionRow.kind == kind, DefinitionRow.name == name
                )
            )
            version = (latest or 0) + 1
            now = datetime.now(UTC)
            session.add(
                DefinitionRow(
                    kind=kind,
                    name=name,
                    version=version,
                    body=body,
                    digest=digest_of(body),
                    author=author,
                    comment=comment,
                    created_at=now,
                )
            )
            diff = diff_bodies(active.body if active else None, body, f"{kind}/{name} v{version}")
            session.add(
                DefinitionChangeRow(
                    kind=kind,
                    name=name,
                    action="deploy",
                    version=version,
                    previous_version=active.version if active else None,
                    author=author,
                    diff=diff,
                    at=now,
                )
            )
        return DeployResult(version, changed=True, diff=diff)

    def rollback(
        self,
        kind: str,
        name: str,
        *,
        author: str,
        check: Callable[[DefinitionRow], None] | None = None,
        only_from: int | None = None,
    ) -> DefinitionRow:
        """Activate the highest version below the active one; ValidationFailed if none.

        ``check`` sees that version first; whatever it raises cancels the rollback.
        ``only_from``: roll back only while that version is active (an automatic rollback
        that another one beat returns the active version unchanged).
        """
        with self._sessions.begin() as session:
            active = self._active_row(session, kind, name)
            if active is None:
                raise NotFound(f"{kind} {name!r} has never been deployed")
            if only_from is not None and active.version != only_from:
                return active
            previous = session.scalar(
                select(DefinitionRow)
                .where(
                    DefinitionRow.kind == kind,
                    DefinitionRow.name == name,
                    DefinitionRow.version < active.version,
                )
                .order_by(DefinitionRow.version.desc())
                .limit(1)
            )
            if previous is None:
                raise ValidationFailed(
                    f"{kind} {name!r} is at its first version (v{active.version}): "
                    "nothing to roll back to"
                )
            if check is not None:
                check(previous)
            session.add(
                DefinitionChangeRow(
                    kind=kind,
                    name=name,
                    action="rollback",
                    version=previous.version,
                    previous_version=active.version,
                    author=author,
                    diff=diff_bodies(
                        active.body, previous.body, f"{kind}/{name} v{previous.version}"
                    ),
                    at=datetime.now(UTC),
                )
            )
            return previous

    def active(self, kind: str, name: str) -> DefinitionRow | None:
        """The active version of ``kind/name``, or None if never deployed."""
        with self._sessions() as session:
            return self._active_row(session, kind, name)

    def active_all(self, kind: str) -> list[DefinitionRow]:
        """The active version of every definition of ``kind``, by name."""
        with self._sessions() as session:
            names = session.scalars(
                select(DefinitionChangeRow.name).where(DefinitionChangeRow.kind == kind).distinct()
            ).all()
            rows = [self._active_row(session, kind, n) for n in sorted(names)]
        return [r for r in rows if r is not None]

    def get(self, kind: str, name: str, version: int) -> DefinitionRow:
        """One version; NotFound if it does not exist."""
        with self._sessions() as session:
            row = session.scalar(
                select(DefinitionRow).where(
                    DefinitionRow.kind == kind,
                    DefinitionRow.name == name,
                    DefinitionRow.version == version,
                )
            )
        if row is None:
            raise NotFound(f"{kind} {name!r} has no version {version}")
        return row

    def versions(self, kind: str, name: str) -> list[DefinitionRow]:
        """Every version of ``kind/name``, oldest first."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(DefinitionRow)
                    .where(DefinitionRow.kind == kind, DefinitionRow.name == name)
                    .order_by(DefinitionRow.version)
                )
            )

    def changes(
        self, kind: str | None = None, limit: int = 50, *, name: str | None = None
    ) -> list[DefinitionChangeRow]:
        """The change log, newest first (of one kind, of one name)."""
        query = select(DefinitionChangeRow).order_by(DefinitionChangeRow.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(DefinitionChangeRow.kind == kind)
        if name is not None:
            query = query.where(DefinitionChangeRow.name == name)
        with self._sessions() as session:
            return list(session.scalars(query))

    def revision(self) -> int:
        """A number that grows with every change: workflows reload definitions when it moves."""
        with self._sessions() as session:
            return session.scalar(select(func.max(DefinitionChangeRow.id))) or 0

    @staticmethod
    def _active_row(session: Any, kind: str, name: str) -> DefinitionRow | None:
        version = session.scalar(
            select(DefinitionChangeRow.version)
            .where(DefinitionChangeRow.kind == kind, DefinitionChangeRow.name == name)
            .order_by(DefinitionChangeRow.id.desc())
            .limit(1)
        )
        if version is None:
            return None
        row: DefinitionRow | None = session.scalar(
            select(DefinitionRow).where(
                DefinitionRow.kind == kind,
                DefinitionRow.name == name,
                DefinitionRow.version == version,
            )
        )
        return row
