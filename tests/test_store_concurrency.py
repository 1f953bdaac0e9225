"""Concurrent accepts: identity resolution holds when requests race (threads, one store)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.accept import Acceptor
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


def test_accepts_about_different_people_do_not_wait_for_each_other(any_store: Store) -> None:
    """PostgreSQL locks per identity: an open accept blocks the same person, not others."""
    if any_store.engine.dialect.name != "postgresql":
        return  # SQLite has one writer at a time whatever we lock
    pool = ThreadPoolExecutor(max_workers=2)
    with Session(any_store.engine) as session, session.begin():  # "slow"'s accept, left open
        Acceptor(session, any_store.contact_id_for).run([track("slow", "Page Viewed")])
        other = pool.submit(any_store.accept, [track("quick", "Page Viewed")])
        same = pool.submit(any_store.accept, [track("slow", "Pricing Page Viewed")])
        assert other.result(timeout=5).accepted == 1
        time.sleep(0.3)
        assert not same.done(), "the same person's accept did not wait for the lock"
    assert same.result(timeout=5).accepted == 1
    pool.shutdown()


def test_events_racing_a_merge_all_end_on_the_surviving_contact(any_store: Store) -> None:
    """Views of a visitor owned by a contact an alias merges away never stay behind on it."""
    any_store.accept([track("merge-old", "Identify", type_="identify", anonymous_id="m-anon")])
    any_store.accept([track("merge-new", "Page Viewed")])
    old = any_store.contact_id_for("merge-old")
    new = any_store.contact_id_for("merge-new")
    views = 30

    def view(i: int) -> None:
        any_store.accept([track(None, f"View {i}", anonymous_id="m-anon")])

    def merge() -> None:
        alias = track("merge-new", "Alias", type_="alias", previous_id="merge-old")
        any_store.accept([alias])

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(view, i) for i in range(views // 2)]
        futures.append(pool.submit(merge))
        futures += [pool.submit(view, i) for i in range(views // 2, views)]
        for future in futures:
            future.result(timeout=30)
    with any_store.engine.connect() as connection:
        left = connection.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.contact_id == old, EventRow.name.like("View %"))
        )
        moved = connection.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.contact_id == new, EventRow.name.like("View %"))
        )
    assert (left, moved) == (0, views)
