"""Concurrent accepts: identity resolution holds when requests race (threads, one store)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from store.repo import Store
from store.schema import EventRow, OutboxRow
from tests.support import track


def test_an_identify_racing_the_anonymous_views_it_links_leaves_no_orphan(
    any_store: Store,
) -> None:
    visitors = range(40)

    def view(i: int) -> None:
        any_store.accept([track(None, "Pricing Page Viewed", anonymous_id=f"race-anon-{i}")])

    def identify(i: int) -> None:
        event = track(f"race-{i}", "Identify", type_="identify", anonymous_id=f"race-anon-{i}")
        any_store.accept([event])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in visitors:
            pool.submit(view, i)
            pool.submit(identify, i)
    with any_store.engine.connect() as connection:
        orphans = connection.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.contact_id.is_(None))
        )
        queued = connection.scalar(select(func.count()).select_from(OutboxRow))
    assert orphans == 0
    assert queued == 2 * len(visitors)
