"""Revenue reports against numbers worked out by hand on a small fixed history (both stores).

The history is ``tests/report_history.py``: six contacts, one recycled twice, one opportunity
with three contacts. Every expected number below is counted from that docstring.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.attribution import AttributionDefinition, parse_attribution
from analysis.report_window import ReportWindow
from gateway.sales import SalesWebhook, to_incoming_sales
from lifecycle.stages import Stage, StageEntry
from models.changes import ContactChanges
from models.ingest import IncomingEvent
from revops.yamlio import read_yaml
from store.funnel import PassRow
from store.history import History
from store.repo import Store
from store.reports import ReportBook
from tests.conftest import REPO
from tests.report_history import at, build_history

NOW = datetime.now(UTC)
ALL_TIME = ReportWindow(until=NOW + timedelta(days=1), generated_at=NOW)
FEBRUARY = ReportWindow(since=at(2, 1, 0), until=at(3, 1, 0), generated_at=NOW)


def _definition(**changes: object) -> AttributionDefinition:
    data = read_yaml(REPO / "config" / "attribution.yaml")
    assert isinstance(data, dict)
    return parse_attribution({**data, **changes}, "attribution.yaml")


@pytest.fixture
def book(any_store: Store) -> ReportBook:
    build_history(any_store)
    reports = ReportBook(any_store, _definition())
    reports.refresh()
    return reports


def _stages(group: object) -> dict[str, tuple[int, int, int | None]]:
    lines = group.stages  # type: ignore[attr-defined]
    return {line.stage.value: (line.reached, line.entered, line.advanced) for line in lines}


def test_funnel_counts_every_pass_from_stage_history(book: ReportBook) -> None:
    report = book.funnel(ALL_TIME)
    # 8 passes: a, b (three times), c, d, e, f. a skipped SAL: it counts as reaching it.
    assert _stages(report.overall) == {
        "Subscriber": (8, 2, 8),
        "Lead": (8, 8, 6),
        "MQL": (6, 6, 4),
        "SAL": (4, 3, 3),
        "SQL": (3, 3, 3),
        "Opportunity": (3, 3, 1),
        "Customer": (1, 1, 0),
        "Evangelist": (0, 0, None),
    }
    conversion = {line.stage.value: line.conversion for line in report.overall.stages}
    assert conversion["Lead"] == 0.75 and conversion["MQL"] == 0.6667
    assert (report.overall.mqls, report.overall.mql_to_customer) == (6, 1)
    assert report.overall.mql_to_customer_rate == 0.1667
    assert [(g.key, g.passes) for g in report.by_cohort] == [
        ("2026-01", 3),
        ("2026-02", 4),
        ("2026-03", 1),
    ]
    assert [(g.key, g.passes) for g in report.by_segment] == [
        ("Enterprise", 4),
        ("Mid-Market", 3),
        ("(no segment)", 1),
    ]
    sources = {g.key: g.passes for g in report.by_source}
    assert sources == {"Webinar": 4, "(no touch)": 2, "Email": 1, "Paid Search": 1}
    (nurture,) = report.by_journey
    assert (nurture.key, nurture.passes, nurture.mqls) == ("whitepaper-nurture", 2, 1)


def test_the_period_counts_passes_that_reached_a_stage_in_it(book: ReportBook) -> None:
    report = book.funnel(FEBRUARY)
    stages = _stages(report.overall)
    # Reached Lead in February: b's second pass, d, e, f; three of them became MQLs.
    assert stages["Lead"] == (4, 4, 3)
    # a became a customer on Feb 1 but reached MQL in January: no MQL-to-customer here.
    assert stages["Customer"] == (1, 1, 0)
    assert (report.overall.mqls, report.overall.mql_to_customer) == (3, 0)
    enterprise = book.funnel(FEBRUARY.model_copy(update={"segment": "Enterprise"}))
    assert _stages(enterprise.overall)["Lead"] == (1, 1, 1)


def test_velocity_times_in_stage_speed_acceptance_and_recycles(book: ReportBook) -> None:
    report = book.velocity(ALL_TIME)
    day = timedelta(days=1)
    times = {s.stage.value: (s.stays, s.in_stage_now, s.median, s.p90) for s in report.stages}
    assert times["Lead"] == (6, 2, 1 * day, 5 * day)
    assert times["MQL"] == (4, 2, 1 * day, 4 * day)
    assert times["SAL"] == (3, 0, 2 * day, 23 * day)
    assert times["SQL"] == (3, 0, 4 * day, 10 * day)
    assert times["Opportunity"] == (2, 1, 12 * day, 33 * day)
    assert times["Customer"] == (1 - 1, 1, None, None)
    lead = next(s for s in report.stages if s.stage is Stage.LEAD)
    assert lead.distribution == {
        "< 1h": 0,
        "1h-1d": 0,
        "1-7d": 6,
        "7-30d": 0,
        "30-90d": 0,
        ">= 90d": 0,
    }

    speed = report.speed_to_lead
    assert (speed.handoffs, speed.median, speed.p90) == (
        3,
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    teams = {line.name: (line.handoffs, line.median) for line in report.speed_by_team}
    assert teams == {"amer": (2, timedelta(minutes=10)), "emea": (1, timedelta(hours=2))}
    sources = {line.name: line.handoffs for line in report.speed_by_source}
    assert sources == {"Webinar": 2, "Email": 1}

    accepted = report.acceptance
    assert (accepted.accepted, accepted.rejected, accepted.open) == (1, 2, 0)
    assert (accepted.acceptance_rate, accepted.rejection_rate) == (0.3333, 0.6667)
    assert [(r.reason, r.count) for r in report.rejection_reasons] == [
        ("Bad timing", 1),
        ("No budget", 1),
    ]

    recycled = report.recycled
    assert (recycled.recycles, recycled.contacts, recycled.recycled_again) == (2, 1, 1)
    assert (recycled.reached_mql_again, recycled.became_customers) == (2, 0)
    assert [(o.from_stage.value, o.became.value, o.count) for o in recycled.outcomes] == [
        ("SAL", "Opportunity", 1),
        ("Opportunity", "MQL", 1),
    ]


def test_a_stage_entry_updates_the_funnel_summary_when_it_is_recorded(
    book: ReportBook, any_store: Store
) -> None:
    contact = any_store.contact_id_for("rp-e")
    entry = StageEntry(stage=Stage.MQL, at=at(3, 2), reason="gate")
    History(any_store).record(ContactChanges(contact_id=contact, stage_entries=[entry]))
    with any_store._sessions() as session:
        (only,) = session.query(PassRow).filter(PassRow.contact_id == contact).all()
    assert (only.top_rank, only.reached_mql is not None) == (Stage.MQL.rank, True)
    assert _stages(book.funnel(ALL_TIME).overall)["MQL"][0] == 7


# ---- attribution: the worked example -------------------------------------------------------

# opp-def: 12,000 (won). Path t1..t5 (t6 only with the closed-won anchor):
# t1 e Jan 20 Paid Search/brand (first), t2 d Jan 25 Webinar, t3 d Feb 1 Paid Social/abm (d's
# lead touch: d became a Lead Feb 2), t4 f Feb 5 Email/whitepaper-nurture, t5 d Feb 8 Paid
# Search/pricing (opportunity touch: created Feb 9), t6 e Feb 15 Email/feb-news (closed won).
WORKED = {
    "first_touch": [12000, 0, 0, 0, 0],
    "last_touch": [0, 0, 0, 0, 12000],
    "linear": [2400, 2400, 2400, 2400, 2400],
    "u_shaped": [4800, 800, 4800, 800, 800],
    "w_shaped": [3600, 600, 3600, 600, 3600],
    "full_path": [2700, 600, 2700, 600, 2700, 2700],
}


@pytest.mark.parametrize("model", sorted(WORKED))
def test_each_position_model_splits_the_worked_example(book: ReportBook, model: str) -> None:
    credit = book.opportunity_credits(ALL_TIME, "opp-def", model)
    assert credit is not None and credit.amount == 12000
    assert [t.credit for t in credit.touches] == WORKED[model]
    assert len(credit.contacts) == 3


def test_time_decay_halves_a_touch_per_half_life(book: ReportBook) -> None:
    credit = book.opportunity_credits(ALL_TIME, "opp-def", "time_decay")
    assert credit is not None
    ages = [20, 15, 8, 4, 1]  # days before Feb 9 noon; half-life 7 days
    weights = [0.5 ** (age / 7) for age in ages]
    expected = [round(12000 * w / sum(weights), 2) for w in weights]
    assert [t.credit for t in credit.touches] == pytest.approx(expected, abs=0.01)


def test_attribution_by_channel_campaign_journey_and_account(book: ReportBook) -> None:
    report = book.attribution(ALL_TIME, "w_shaped")
    # a: 5,000 won, no touchpoint. b: 8,000 lost, webinar only. def: 12,000 won (above).
    assert (report.opportunities, report.pipeline, report.won, report.revenue) == (
        3,
        25000,
        2,
        17000,
    )
    channels = {line.name: (line.pipeline, line.revenue) for line in report.channels}
    assert channels == {
        "Paid Search": (7200, 7200),
        "Webinar": (8600, 600),
        "(no touchpoint)": (5000, 5000),
        "Paid Social": (3600, 3600),
        "Email": (600, 600),
    }
    campaigns = {line.name: line.pipeline for line in report.campaigns}
    assert campaigns["Q1 Webinar"] == 8600 and campaigns["pricing"] == 3600
    assert [(j.name, j.pipeline) for j in report.journeys] == [("whitepaper-nurture", 600)]
    assert sum(line.pipeline for line in report.accounts) == 25000

    february = book.attribution(FEBRUARY, "first_touch")
    assert (february.opportunities, february.pipeline) == (2, 20000)  # b's and def's
    assert (february.won, february.revenue) == (2, 17000)  # a won Feb 1, def Feb 20


def test_journeys_and_forecast(book: ReportBook) -> None:
    (nurture,) = book.journeys(ALL_TIME).journeys
    assert (nurture.sends, nurture.recipients, nurture.openers, nurture.clickers) == (2, 2, 2, 1)
    assert (nurture.open_rate, nurture.click_rate, nurture.pipeline) == (1.0, 0.5, 600)

    forecast = book.forecast(ALL_TIME)
    lines = {line.stage: line for line in forecast.lines}
    # MQLs now: b (third pass) and f; SQLs now: d (Opportunity). Won: a 5,000 and def 12,000.
    assert (lines["MQL"].current, lines["MQL"].trailing_reached, lines["MQL"].trailing_won) == (
        2,
        6,
        1,
    )
    assert (lines["SQL"].current, lines["SQL"].trailing_reached, lines["SQL"].trailing_won) == (
        1,
        3,
        1,
    )
    assert forecast.average_deal_size == 8500
    assert forecast.expected_revenue == pytest.approx(2 * 8500 / 6 + 8500 / 3, abs=0.02)


def test_an_anonymous_touch_counts_once_its_visitor_is_identified(any_store: Store) -> None:
    book = ReportBook(any_store, _definition())
    visit = IncomingEvent(
        message_id="anon-visit",
        type="page",
        name="Page Viewed",
        anonymous_id="visitor-1",
        context={"campaign": {"source": "google", "medium": "cpc", "name": "brand"}},
        timestamp=at(1, 2),
        received_at=at(1, 2),
    )
    any_store.accept([visit])
    book.refresh()
    contact = any_store.contact_id_for("rp-anon")
    who = IncomingEvent(
        message_id="anon-identify",
        type="identify",
        name="Identify",
        user_id="rp-anon",
        anonymous_id="visitor-1",
        timestamp=at(1, 3),
        received_at=at(1, 3),
    )
    any_store.accept([who, _sale("rp-anon", "x1", "opportunity_created", at(1, 4), 900)])
    book.refresh()
    credit = book.opportunity_credits(ALL_TIME, f"contact:{contact}", "first_touch")
    assert credit is not None
    assert [(t.channel, t.campaign, t.credit) for t in credit.touches] == [
        ("Paid Search", "brand", 900)
    ]
    # A new channel map is a new definition: touchpoints are rebuilt under it.
    renamed = ReportBook(any_store, _definition(channels={"cpc": "Search Ads"}))
    renamed.refresh()
    credit = renamed.opportunity_credits(ALL_TIME, f"contact:{contact}", "first_touch")
    assert credit is not None and credit.touches[0].channel == "Search Ads"


# ---- the credits of one opportunity sum to its amount ---------------------------------------


def _sale(user: str, hook: str, activity: str, when: datetime, amount: float) -> IncomingEvent:
    return to_incoming_sales(
        SalesWebhook.model_validate(
            {
                "id": hook,
                "type": activity,
                "occurred_at": when.isoformat(),
                "contact": {"user_id": user},
                "amount": amount,
            }
        ),
        user,
        when,
    )


_serial = itertools.count()
TOUCH = st.tuples(
    st.integers(min_value=0, max_value=2),  # which contact
    st.integers(min_value=-400, max_value=40),  # day relative to the opportunity
    st.sampled_from(["cpc", "email", "social", "Email Clicked", "Webinar Attended"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    touches=st.lists(TOUCH, max_size=8),
    amount=st.one_of(st.just(0.0), st.floats(min_value=0.01, max_value=1e12)),
    contacts=st.integers(min_value=1, max_value=3),
    won_after=st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
    lead_day=st.one_of(st.none(), st.integers(min_value=-200, max_value=10)),
)
def test_the_credits_of_an_opportunity_sum_to_its_amount(
    any_store: Store,
    touches: list[tuple[int, int, str]],
    amount: float,
    contacts: int,
    won_after: int | None,
    lead_day: int | None,
) -> None:
    run = next(_serial)
    users = [f"sum-{run}-{n}" for n in range(contacts)]
    created = at(6, 1)
    events: list[IncomingEvent] = []
    for index, (who, day, kind) in enumerate(touches):
        when = created + timedelta(days=day, minutes=index)
        user = users[who % contacts]
        fields: dict[str, object] = {"context": {"campaign": {"medium": kind, "source": "s"}}}
        name = "Page Viewed"
        if kind in ("Email Clicked", "Webinar Attended"):
            name, fields = kind, {"properties": {"journey": "j"}}
        events.append(
            IncomingEvent(
                message_id=f"t-{run}-{index}",
                type="track",
                name=name,
                user_id=user,
                timestamp=when,
                received_at=when,
                **fields,
            )
        )
    opportunity = f"opp-{run}"
    for n, user in enumerate(users):
        hook = SalesWebhook.model_validate(
            {
                "id": f"o-{run}-{n}",
                "type": "opportunity_created",
                "occurred_at": (created + timedelta(seconds=n)).isoformat(),
                "contact": {"user_id": user},
                "opportunity_id": opportunity,
                "amount": amount if n == 0 else None,
            }
        )
        events.append(to_incoming_sales(hook, user, created))
    if won_after is not None:
        won = SalesWebhook.model_validate(
            {
                "id": f"w-{run}",
                "type": "closed_won",
                "occurred_at": (created + timedelta(days=won_after, hours=1)).isoformat(),
                "contact": {"user_id": users[0]},
                "opportunity_id": opportunity,
            }
        )
        events.append(to_incoming_sales(won, users[0], created))
    any_store.accept(events)
    if lead_day is not None:
        entry = StageEntry(stage=Stage.LEAD, at=created + timedelta(days=lead_day), reason="t")
        History(any_store).record(
            ContactChanges(contact_id=any_store.contact_id_for(users[0]), stage_entries=[entry])
        )
    book = ReportBook(any_store, _definition())
    book.refresh()
    for model in book.definition.models:
        credit = book.opportunity_credits(ALL_TIME, opportunity, model)
        assert credit is not None
        total = sum(t.weight for t in credit.touches)
        assert total == pytest.approx(1.0, abs=1e-5), (model, credit)
        assert all(t.weight >= 0 for t in credit.touches)
        sums = book.credit_sums(ALL_TIME, model)
        assert sums[opportunity] == pytest.approx(amount, rel=1e-9, abs=1e-6)
