"""The funnel's summary tables, kept current as stage history is recorded.

Funnel and velocity reports count from stage history, never from a contact's current stage.
Reading ``stage_history`` with window functions for every report would cost a sort of the
whole table each time, so two tables summarise it, rebuilt for a contact in the same
transaction that records its new stage entries (``Store.record_stage_entries``):

- ``report_spells``: one row per stage entry, with the pass it belongs to and when the contact
  left that stage (its next entry), so time in stage is one column.
- ``report_passes``: one row per pass through the funnel: when it started (and its monthly
  cohort) and had its last entry, the stages actually entered (a bit mask), the first moment
  it reached each stage or beyond (``reached_<stage>``), its top stage, and when it was
  recycled (``recycled_at``, null while it is the contact's current pass).

A **pass** starts with a contact's first entry and again at every *recycle*: an entry at or
below the stage before it (the lifecycle's recycle policies, or a manual override down).
Within a pass stages only rise, so "reached SAL" also counts a pass that went from MQL straight
to SQL: that contact counts in MQL->SAL and in SAL->SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Index,
    Integer,
    Select,
    String,
    UniqueConstraint,
    case,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from lifecycle.stages import STAGES, Stage
from store.schema import Base, BigId, StageHistoryRow
from store.sqlfn import month_of, seconds_between

__all__ = [
    "STAGE_BITS",
    "PassRow",
    "SpellRow",
    "reached_column",
    "rebuild_funnel",
]

STAGE_BITS: dict[Stage, int] = {stage: 1 << stage.rank for stage in STAGES}
"""The bit of each stage in ``report_passes.entered_mask``."""


def reached_column(stage: Stage) -> str:
    """The ``report_passes`` column holding when a pass first reached ``stage`` or beyond."""
    return f"reached_{stage.value.lower()}"


class SpellRow(Base):
    """One stage entry in its pass, and when the contact left the stage (its next entry)."""

    __tablename__ = "report_spells"
    __table_args__ = (Index("ix_report_spells_stage_entered", "stage_rank", "entered_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32), index=True)
    pass_no: Mapped[int] = mapped_column(Integer)
    stage_rank: Mapped[int] = mapped_column(Integer)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float | None] = mapped_column(Float)


class PassRow(Base):
    """One pass of a contact through the funnel (see the module docstring)."""

    __tablename__ = "report_passes"
    __table_args__ = (UniqueConstraint("contact_id", "pass_no", name="uq_report_pass"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(String(32))
    pass_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    cohort: Mapped[str] = mapped_column(String(7))
    top_rank: Mapped[int] = mapped_column(Integer)
    entered_mask: Mapped[int] = mapped_column(Integer)
    recycled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_subscriber: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_lead: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_mql: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_sal: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_sql: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_opportunity: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_customer: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reached_evangelist: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def _spells_query(contact_ids: Sequence[str] | None) -> Select[Any]:
    """Stage history with ranks, pass numbers and leave times, by window functions."""
    history = StageHistoryRow
    rank = case({stage.value: stage.rank for stage in STAGES}, value=history.stage, else_=0)
    order = (history.entered_at, history.id)
    ranked = select(
        history.contact_id,
        history.entered_at,
        history.id,
        rank.label("stage_rank"),
        func.lag(rank).over(partition_by=history.contact_id, order_by=order).label("prev_rank"),
        func.lead(history.entered_at)
        .over(partition_by=history.contact_id, order_by=order)
        .label("left_at"),
    )
    if contact_ids is not None:
        ranked = ranked.where(history.contact_id.in_(contact_ids))
    r = ranked.subquery("ranked")
    recycle = case((r.c.prev_rank.is_not(None) & (r.c.stage_rank <= r.c.prev_rank), 1), else_=0)
    numbered = select(
        r.c.contact_id,
        r.c.stage_rank,
        r.c.entered_at,
        r.c.left_at,
        func.sum(recycle)
        .over(
            partition_by=r.c.contact_id,
            order_by=(r.c.entered_at, r.c.id),
            rows=(None, 0),
        )
        .label("pass_no"),
    ).subquery("numbered")
    return select(
        numbered.c.contact_id,
        numbered.c.pass_no,
        numbered.c.stage_rank,
        numbered.c.entered_at,
        numbered.c.left_at,
        seconds_between(numbered.c.left_at, numbered.c.entered_at),
    )


def _passes_query(contact_ids: Sequence[str] | None) -> Select[Any]:
    spell = SpellRow
    reached = [
        func.min(case((spell.stage_rank >= stage.rank, spell.entered_at))) for stage in STAGES
    ]
    bit = case({stage.rank: STAGE_BITS[stage] for stage in STAGES}, value=spell.stage_rank)
    recycled = case(
        (func.count(spell.left_at) == func.count(), func.max(spell.left_at)), else_=literal(None)
    )
    query = select(
        spell.contact_id,
        spell.pass_no,
        func.min(spell.entered_at),
        func.max(spell.entered_at),
        month_of(func.min(spell.entered_at)),
        func.max(spell.stage_rank),
        func.sum(bit),
        recycled,
        *reached,
    ).group_by(spell.contact_id, spell.pass_no)
    if contact_ids is not None:
        query = query.where(spell.contact_id.in_(contact_ids))
    return query


_SPELL_COLUMNS = ["contact_id", "pass_no", "stage_rank", "entered_at", "left_at", "seconds"]
_PASS_COLUMNS = [
    "contact_id",
    "pass_no",
    "started_at",
    "last_at",
    "cohort",
    "top_rank",
    "entered_mask",
    "recycled_at",
    *(reached_column(stage) for stage in STAGES),
]


def rebuild_funnel(session: Session, contact_ids: Sequence[str] | None) -> None:
    """Recompute the spells and passes of these contacts (of everyone with None), in SQL."""
    for table in (SpellRow, PassRow):
        statement = delete(table)
        if contact_ids is not None:
            statement = statement.where(table.contact_id.in_(contact_ids))
        session.execute(statement)
    session.execute(insert(SpellRow).from_select(_SPELL_COLUMNS, _spells_query(contact_ids)))
    session.execute(insert(PassRow).from_select(_PASS_COLUMNS, _passes_query(contact_ids)))
