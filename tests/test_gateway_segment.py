"""The real Segment SDK, over real HTTP, into the gateway and on to contact workflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.repo import Store
from tests.gateway_support import segment_sdk, serve_gateway, state_after
from tests.support import eventually, handle_for, running_worker, save_history, state_of

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


async def test_sdk_calls_build_the_contact_profile_and_history(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        segment_sdk(url) as sdk,
    ):
        sdk.client.page(
            anonymous_id="anon-sdk",
            name="Pricing",
            properties={"path": "/pricing", "url": "https://example.test/pricing"},
            timestamp=T0,
        )
        traits = {
            "email": "ana@acme.io",
            "title": "VP Marketing",
            "company": {"name": "Acme", "employee_count": 450, "industry": "Software"},
            "address": {"country": "US"},
            "timezone": "Europe/Berlin",
        }
        sdk.client.identify("gw-sdk", traits, anonymous_id="anon-sdk", timestamp=T0 + timedelta(1))
        sdk.client.track("gw-sdk", "Signed Up", {"plan": "pro"}, timestamp=T0 + timedelta(2))
        sdk.client.group("gw-sdk", "acct-acme", {"name": "Acme", "website": "https://www.acme.io"})
        sdk.client.page("gw-sdk", name=None, properties={"path": "/blog"})
        await sdk.flush()
        handle = handle_for(env.client, store, "gw-sdk")
        state = await state_after(handle, 5)
    assert state.event_counts == {
        "Pricing Page Viewed": 1,
        "Identify": 1,
        "Signed Up": 1,
        "Group": 1,
        "Page Viewed": 1,
    }
    assert state.stage == "Lead"
    assert state.events[0].name == "Pricing Page Viewed"
    assert state.events[0].properties["path"] == "/pricing"
    expected = {
        "title": "VP Marketing",
        "company": "Acme",
        "company_size": 450,
        "industry": "Software",
        "country": "US",
        "timezone": "Europe/Berlin",
        "email_domain": "acme.io",
        "account_domain": "acme.io",
    }
    assert expected.items() <= state.traits.items()
    assert "email" not in state.traits
    assert state.account_id == "acct-acme"
    row = store.contact(state.contact_id)
    assert row is not None and row.email == "ana@acme.io" and row.account_id == "acct-acme"


async def test_anonymous_visitor_has_no_workflow_until_identified(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        segment_sdk(url) as sdk,
    ):
        for day, page in enumerate(("Pricing", "Security", "Pricing")):
            sdk.client.page(anonymous_id="anon-late", name=page, timestamp=T0 + timedelta(day))
        await sdk.flush()
        assert store.row_counts()["events"] == 3
        assert store.resolve("anon-late") is None
        assert store.pending() == []
        sdk.client.track(
            "gw-late",
            "Signed Up",
            anonymous_id="anon-late",
            timestamp=T0 + timedelta(days=5),
        )
        await sdk.flush()
        handle = handle_for(env.client, store, "gw-late")
        state = await state_after(handle, 4)
    assert [e.name for e in state.events] == [
        "Pricing Page Viewed",
        "Security Page Viewed",
        "Pricing Page Viewed",
        "Signed Up",
    ]
    assert state.event_counts["Pricing Page Viewed"] == 2
    assert store.resolve("anon-late") == state.contact_id


async def test_alias_merges_two_known_contacts_and_stops_the_old_workflow(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        segment_sdk(url) as sdk,
    ):
        sdk.client.track("gw-before", "Webinar Registered", timestamp=T0)
        sdk.client.track("gw-after", "Trial Started", timestamp=T0 + timedelta(1))
        await sdk.flush()
        old = handle_for(env.client, store, "gw-before")
        new = handle_for(env.client, store, "gw-after")
        await state_after(old, 1)
        await state_after(new, 1)
        sdk.client.alias(previous_id="gw-before", user_id="gw-after", timestamp=T0 + timedelta(2))
        await sdk.flush()
        await eventually(old.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
        sdk.client.track("gw-before", "Demo Requested", timestamp=T0 + timedelta(3))
        await sdk.flush()
        state = await state_after(new, 4)
        old_state = await state_of(old)
        await save_history(old, "contact_merged_into")
    assert store.resolve("gw-before") == store.resolve("gw-after") == state.contact_id
    assert old_state.merged_into == state.contact_id
    assert old_state.events_applied == 1
    assert state.event_counts == {
        "Webinar Registered": 1,
        "Trial Started": 1,
        "Alias": 1,
        "Demo Requested": 1,
    }
