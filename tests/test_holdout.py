"""Journey holdouts: who is held out, and what the lift over doing nothing is."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.holdout import holdout_report
from journeys.definition import Holdout
from journeys.program import in_holdout
from revops.settings import Settings
from store.journeys import JourneyLog
from store.repo import Store
from tests.test_dashboard import PASSWORD, dashboard


def test_the_holdout_takes_its_share_of_contacts_and_keeps_each_one_where_it_is() -> None:
    contacts = [f"c{n:05d}" for n in range(10_000)]
    held = [c for c in contacts if in_holdout(c, "whitepaper-nurture", 10)]
    assert 900 < len(held) < 1100, len(held)
    assert held == [c for c in contacts if in_holdout(c, "whitepaper-nurture", 10)]
    other = {c for c in contacts if in_holdout(c, "webinar", 10)}
    assert len(other & set(held)) < 200, "each journey holds out its own contacts"


@given(st.text(min_size=1, max_size=20), st.floats(0.01, 99.99), st.floats(0.01, 99.99))
def test_a_bigger_holdout_keeps_everyone_a_smaller_one_held_out(
    contact: str, a: float, b: float
) -> None:
    small, big = sorted((a, b))
    assert not in_holdout(contact, "j", small) or in_holdout(contact, "j", big)


def test_lift_and_its_confidence_interval() -> None:
    report = holdout_report((1000, 120), (1000, 80))
    assert report.enrolled.rate == 0.12 and report.held_out.rate == 0.08
    assert report.lift == pytest.approx(0.04)
    assert report.relative_lift == pytest.approx(0.5)
    assert report.ci_low == pytest.approx(0.0138, abs=1e-4)
    assert report.ci_high == pytest.approx(0.0662, abs=1e-4)
    assert report.significant
    small = holdout_report((50, 6), (50, 4))
    assert small.ci_low is not None and small.ci_low < 0 and not small.significant


def test_no_lift_without_both_groups() -> None:
    report = holdout_report((10, 2), (0, 0))
    assert report.lift is None and report.ci_low is None and not report.significant


@pytest.mark.parametrize("percent", [0, 100, -5])
def test_a_holdout_share_must_leave_both_groups(percent: float) -> None:
    with pytest.raises(ValueError, match="percent"):
        Holdout.model_validate({"percent": percent})


async def test_the_dashboard_shows_each_journeys_holdout(settings: Settings, store: Store) -> None:
    log = JourneyLog(store)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    for n in range(40):
        group = "held_out" if n % 4 == 0 else "enrolled"
        log.assigned(f"e{n}", f"c{n}", "webinar", 1, "holdout", group, now)
        if n % 3 == 0:
            log.converted(f"e{n}", f"c{n}", "webinar", 1, "registered", now)
    async with (
        dashboard(settings, store) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await http.post("/dashboard/login", data={"user": "ana", "password": PASSWORD})
        shown = await http.get("/dashboard?since=2026-01-01&until=2026-03-31")
    assert shown.status_code == 200 and 'id="table-holdouts"' in shown.text
    expected = log.holdout("webinar")
    assert expected is not None and expected.lift is not None
    assert f"{expected.lift * 100:+.1f} pts" in shown.text
