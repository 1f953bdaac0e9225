"""Opportunities from the signed sales webhook reach the revenue reports; bad amounts are refused.

Over HTTP on the real gateway, on both stores: a CRM posts `opportunity_created` for two
contacts of one opportunity and `closed_won` with the final amount; attribution then sees one
won opportunity with both contacts and that amount. An amount that is negative, not a number,
or dust is refused with 400 naming the field, and nothing is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from analysis.report_window import ReportWindow
from definitions import ATTRIBUTION, Definitions
from revops.settings import Settings
from store.repo import Store
from store.reports import ReportBook
from tests.gateway_support import serve_gateway
from tests.test_gateway_webhooks import hook, rotating, signed


@pytest.mark.parametrize("amount", [-5, "lots", 0.001, 1e16])
async def test_a_bad_amount_is_refused_and_nothing_is_stored(
    settings: Settings, any_store: Store, amount: object
) -> None:
    before = any_store.row_counts()
    body = hook("opp-bad", "opportunity_created", "crm-1", opportunity_id="o-1", amount=amount)
    async with serve_gateway(rotating(settings), any_store) as url, httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/v1/webhooks/sales", content=body, headers=signed(body))
    assert answer.status_code == 400 and "amount" in answer.text
    assert any_store.row_counts() == before


async def test_an_opportunity_with_two_contacts_is_one_won_deal_in_the_reports(
    settings: Settings, any_store: Store
) -> None:
    posts = [
        hook("o1", "opportunity_created", "crm-ana", opportunity_id="opp-42", amount=40000),
        hook("o2", "opportunity_created", "crm-bo", opportunity_id="opp-42"),
        hook("o3", "stage_changed", "crm-ana", opportunity_id="opp-42", stage="Proposal"),
        hook("o4", "closed_won", "crm-bo", opportunity_id="opp-42", amount=45000, currency="EUR"),
    ]
    async with serve_gateway(rotating(settings), any_store) as url, httpx.AsyncClient() as http:
        for body in posts:
            answer = await http.post(f"{url}/v1/webhooks/sales", content=body, headers=signed(body))
            assert answer.status_code == 200, answer.text
    definition = Definitions.of(any_store, settings).get(ATTRIBUTION)
    book = ReportBook(any_store, definition)
    book.refresh()
    now = datetime.now(UTC)
    window = ReportWindow(
        since=now - timedelta(days=1), until=now + timedelta(days=1), generated_at=now
    )
    credit = book.opportunity_credits(window, "opp-42")
    assert credit is not None and credit.amount == 45000
    contacts = {any_store.contact_id_for("crm-ana"), any_store.contact_id_for("crm-bo")}
    assert set(credit.contacts) == contacts and credit.touches[0].channel == "(no touchpoint)"
    report = book.attribution(window)
    assert (report.opportunities, report.won, report.revenue) == (1, 1, 45000)
    forecast = book.forecast(window)
    assert (forecast.deals_won, forecast.average_deal_size) == (1, 45000)
