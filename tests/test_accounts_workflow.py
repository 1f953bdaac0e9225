"""Accounts through the real contact and account workflows: membership by email domain and by
Segment ``group``, the account's counts and committee, what members see back, moving."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from accounts.contract import AccountState
from audience.accounts import account_id_for, account_workflow_id
from audience.conditions import evaluate, parse_condition
from audience.facts import AccountFacts
from contacts.contract import ContactState
from contacts.state import facts_of
from revops.settings import Settings
from store.accounts import AccountBook
from store.repo import Store
from tests.support import (
    eventually,
    handle_for,
    quick_accounts,
    running_worker,
    save_history,
    send,
    state_of,
    track,
)
from workflows.account import AccountWorkflow


def _domain() -> str:
    """A company domain for this test only (account ids derive from domains)."""
    return f"acme-{uuid.uuid4().hex[:8]}.example"


def _account(client: Client, domain: str) -> WorkflowHandle[AccountWorkflow, None]:
    account_id = account_id_for(f"domain:{domain}")
    return client.get_workflow_handle_for(AccountWorkflow.run, account_workflow_id(account_id))


async def _account_state(handle: WorkflowHandle[AccountWorkflow, None]) -> AccountState | None:
    try:
        return await handle.query(AccountWorkflow.state)
    except RPCError:
        return None


async def _facts(handle: WorkflowHandle[AccountWorkflow, None]) -> AccountFacts | None:
    try:
        return await handle.query(AccountWorkflow.facts)
    except RPCError:
        return None


def _person(title: str, email: str) -> dict[str, Any]:
    return {"title": title, "email": email, "company_size": 450, "industry": "Software"}


async def test_three_colleagues_share_one_account_and_free_mail_joins_none(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings = quick_accounts(settings, tmp_path)
    domain = _domain()
    people = {
        "u-acc-cfo": "CFO",
        "u-acc-vp": "VP Engineering",
        "u-acc-eng": "Senior Software Engineer",
    }
    tag = uuid.uuid4().hex[:6]
    async with running_worker(env.client, store, settings, children=False) as relay:
        for user, title in people.items():
            uid = f"{user}-{tag}"
            who = _person(title, f"{user}@{domain}")
            await send(store, relay, track(uid, "Identify", type_="identify", traits=who))
            await send(store, relay, track(uid, "Pricing Page Viewed"))
        loner = f"u-acc-gmail-{tag}"
        await send(
            store,
            relay,
            track(loner, "Identify", type_="identify", traits=_person("CEO", "kim@gmail.com")),
            track(loner, "Pricing Page Viewed"),
        )
        handle = _account(env.client, domain)
        facts = await eventually(
            lambda: _facts(handle), lambda f: f is not None and len(f.engaged) == 3
        )
        assert facts is not None
        account = await _account_state(handle)
        assert account is not None and len(account.members) == 3
        assert facts.committee == ["economic_buyer", "champion", "technical_evaluator"]
        assert facts.priority == "high", "the CFO is an executive who engaged"
        assert facts.domain == domain
        member = handle_for(env.client, store, f"u-acc-eng-{tag}")
        seen = await eventually(
            lambda: state_of(member),
            lambda s: s.account is not None and len(s.account.engaged) == 3,
        )
        three = parse_condition({"account": {"engaged_contacts": {"at_least": 3, "within": "30d"}}})
        assert (
            evaluate(three, facts_of(seen, seen.account.engaged[-1].at)) if seen.account else False
        )
        buyer = parse_condition({"account": {"committee_has": "economic_buyer"}})
        assert (
            evaluate(buyer, facts_of(seen, seen.account.engaged[-1].at)) if seen.account else False
        )
        free = await eventually(
            lambda: state_of(handle_for(env.client, store, loner)),
            lambda s: s.events_applied == 2,
        )
        assert free.account_link is None and free.account is None
        recorded = await eventually(
            lambda: _recorded(store, account.account_id), lambda r: r is not None and r[0] == 3
        )
        assert recorded is not None
        await save_history(member, "contact_accounts_member")
        await save_history(handle, "account_three_members")


async def _recorded(store: Store, account_id: str) -> tuple[int, int] | None:
    record = AccountBook(store).get(account_id)
    return None if record is None else (len(record.members), len(record.facts.engaged))


async def test_group_traits_live_on_the_account_and_a_moved_contact_updates_both(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings = quick_accounts(settings, tmp_path)
    first, second = _domain(), _domain()
    tag = uuid.uuid4().hex[:6]
    mover, colleague = f"u-mover-{tag}", f"u-colleague-{tag}"
    group: dict[str, Any] = {
        "name": "Second Corp",
        "industry": "Fintech",
        "website": f"https://www.{second}/",
        "owner": "rep-ana",
        "tier": "Tier 1",
    }
    async with running_worker(env.client, store, settings, children=False) as relay:
        await send(
            store,
            relay,
            track(mover, "Identify", type_="identify", traits=_person("CTO", f"m@{first}")),
            track(mover, "Webinar Attended"),
            track(
                colleague, "Identify", type_="identify", traits=_person("Analyst", f"c@{second}")
            ),
        )
        old = _account(env.client, first)
        await eventually(
            lambda: _account_state(old), lambda s: s is not None and len(s.members) == 1
        )
        await send(
            store,
            relay,
            track(
                mover,
                "Group",
                type_="group",
                group_id=f"g-{tag}",
                traits={"company": "Second Corp", "industry": "Fintech", "account_domain": second},
                properties={"group_traits": group},
            ),
        )
        new = _account(env.client, second)
        moved = await eventually(
            lambda: _account_state(new), lambda s: s is not None and len(s.members) == 2
        )
        assert moved is not None and moved.traits["tier"] == "Tier 1"
        emptied = await eventually(
            lambda: _account_state(old), lambda s: s is not None and not s.members
        )
        assert emptied is not None and emptied.departed
        seen = await eventually(
            lambda: state_of(handle_for(env.client, store, colleague)),
            lambda s: s.account is not None and s.account.owner == "rep-ana",
        )
        assert "industry" not in seen.traits or seen.traits["industry"] == "Software"
        industry = parse_condition({"account": {"trait": "industry", "in": ["Fintech"]}})
        assert evaluate(industry, facts_of(seen, seen.created_at))
        tier = parse_condition({"account": {"trait": "tier", "eq": "tier 1"}})
        assert evaluate(tier, facts_of(seen, seen.created_at))
        mover_state: ContactState = await state_of(handle_for(env.client, store, mover))
        assert mover_state.account_link is not None
        assert mover_state.account_link.via == "group"
        assert AccountBook(store).account_of(mover_state.contact_id) == moved.account_id


async def test_a_contact_merged_into_another_leaves_its_account(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings = quick_accounts(settings, tmp_path)
    domain, tag = _domain(), uuid.uuid4().hex[:6]
    old, new = f"u-old-{tag}", f"u-new-{tag}"
    async with running_worker(env.client, store, settings, children=False) as relay:
        for user in (old, new):
            who = _person("Analyst", f"{user}@{domain}")
            await send(store, relay, track(user, "Identify", type_="identify", traits=who))
        handle = _account(env.client, domain)
        await eventually(
            lambda: _account_state(handle), lambda s: s is not None and len(s.members) == 2
        )
        merged = store.resolve(old)
        await send(store, relay, track(new, "Alias", type_="alias", previous_id=old))
        after = await eventually(
            lambda: _account_state(handle), lambda s: s is not None and len(s.members) == 1
        )
        assert after is not None and merged not in after.members and merged in after.departed


async def test_a_day_of_page_views_tells_the_account_once_and_members_hear_only_what_they_read(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The fan-in patches: a member engaging on a new day tells the account, its next pages
    that day (other names, no score) tell it nothing; the account tells members when who is
    engaged changed, not when an engaged member engages again."""
    settings = quick_accounts(settings, tmp_path)
    domain, tag = _domain(), uuid.uuid4().hex[:6]
    first, second = f"u-fan-a-{tag}", f"u-fan-b-{tag}"
    yesterday = datetime.now(UTC) - timedelta(days=1)
    async with running_worker(env.client, store, settings, children=False) as relay:
        for user in (first, second):
            who = _person("Analyst", f"{user}@{domain}")
            await send(store, relay, track(user, "Identify", type_="identify", traits=who))
            await send(store, relay, track(user, "Docs Page Viewed", type_="page", at=yesterday))
        handle = _account(env.client, domain)
        told = await eventually(
            lambda: _account_state(handle), lambda s: s is not None and len(s.told) == 2
        )
        assert told is not None
        member = handle_for(env.client, store, first)
        before: ContactState = await eventually(
            lambda: state_of(member),
            lambda s: s.account is not None and len(s.account.engaged) == 2,
        )
        await send(store, relay, track(first, "Blog Page Viewed", type_="page"))
        today = await eventually(
            lambda: state_of(member), lambda s: s.events_applied == before.events_applied + 1
        )
        assert today.account_seq == before.account_seq + 1, "a new day is news"
        account = await eventually(
            lambda: _account_state(handle),
            lambda s: s is not None and s.members[before.contact_id].seq == today.account_seq,
        )
        assert account is not None and account.told == told.told, "no broadcast for a repeat"
        assert account.broadcast_at == told.broadcast_at
        await send(store, relay, track(first, "Careers Page Viewed", type_="page"))
        after = await eventually(
            lambda: state_of(member), lambda s: s.events_applied == today.events_applied + 1
        )
        assert after.account_seq == today.account_seq, "the same day: nothing to tell"
        await save_history(member, "contact_accounts_fanin_member")
        await save_history(handle, "account_fanin_broadcast")
