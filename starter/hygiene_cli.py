"""``revops reports hygiene``: the records missing the fields routing and scoring need.

The fields come from the active definitions (``analysis.hygiene``): routing's territory,
account domain and industry, and every trait the scoring model's fit rules read. Known
contacts only (a user id, not merged away); the store is read, no workflow is asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from analysis.hygiene import HygieneReport, HygieneSubject, hygiene_report, requirements_of
from definitions import SCORING, Definitions
from revops.errors import ConfigError
from starter.common import console, fail, open_store, settings
from starter.output import JsonFlag, emit
from store.repo import Store
from store.schema import ContactRow

__all__ = ["register"]


def _subjects(store: Store) -> Iterator[HygieneSubject]:
    query = select(ContactRow.user_id, ContactRow.stage, ContactRow.traits, ContactRow.email).where(
        ContactRow.user_id.is_not(None), ContactRow.merged_into.is_(None)
    )
    with store._sessions() as session:
        for user_id, stage, traits, email in session.execute(query).yield_per(1000):
            yield HygieneSubject(
                user_id=str(user_id), stage=stage, traits=traits or {}, has_email=bool(email)
            )


def _print(report: HygieneReport) -> None:
    console.print(
        f"Data hygiene: {report.incomplete:,} of {report.contacts:,} contacts miss a field "
        "routing or scoring needs",
        highlight=False,
    )
    fields = Table("field", "needed by", "missing", "share", title="per field")
    for line in report.fields:
        fields.add_row(
            line.field, ", ".join(line.needed_by), f"{line.missing:,}", f"{line.share:.0%}"
        )
    console.print(fields)
    if report.records:
        records = Table("user id", "stage", "missing", title="records (most gaps first)")
        for record in report.records:
            records.add_row(record.user_id, record.stage or "-", ", ".join(record.missing))
        console.print(records)


def register(app: typer.Typer) -> None:
    """Add ``hygiene`` to the reports command group."""

    @app.command("hygiene")
    def hygiene(
        limit: Annotated[int, typer.Option(min=0, help="Records to list (most gaps first).")] = 50,
        as_json: JsonFlag = False,
    ) -> None:
        """Records missing the fields routing and scoring need, per field and per record."""
        current = settings()
        store = open_store(current)
        try:
            model = Definitions.of(store, current).get(SCORING)
        except ConfigError as exc:
            fail(str(exc), 2)
        report = hygiene_report(
            _subjects(store), requirements_of(model), datetime.now(UTC), limit=limit
        )
        emit(report, as_json, _print)
