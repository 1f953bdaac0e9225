"""``revops accounts``: one account (members, committee, scores, demand state, recent activity,
owner) and the list of accounts.

An account is found by its id (``a`` + 19 hex) or by a domain (free-mail and subsidiary rules
of the active ``accounts`` definition apply, so ``acme.de`` shows its parent). The live state
comes from the account's workflow; without one, the store's record is shown.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from accounts.contract import AccountState, BehaviourSeen, MemberRecord
from audience.accounts import AccountsConfig, account_id_for, account_workflow_id
from audience.facts import AccountFacts
from definitions import ACCOUNTS, Definitions
from revops.errors import NotFound
from revops.temporal import connect
from starter.common import console, open_store, run_async, settings
from starter.definitions_cli import add_definition_commands
from starter.output import JsonFlag, Moment, emit
from store.accounts import AccountBook
from store.repo import Store
from workflows.account import AccountWorkflow

__all__ = ["AccountView", "accounts_app", "find_account", "load_account_view"]

accounts_app = typer.Typer(
    help="Accounts: members, buying committee, scores, demand state, the account play.",
    no_args_is_help=True,
)
add_definition_commands(accounts_app, ACCOUNTS)

_ACCOUNT_ID = re.compile(r"^a[0-9a-f]{19}$")


class MemberView(BaseModel):
    """One member as ``accounts show`` lists it (no personal data but the user id)."""

    contact_id: str
    user_id: str | None
    role: str | None
    executive: bool
    stage: str | None
    fit: float
    engagement: float
    demand_state: str | None
    via: str
    joined_at: Moment
    last_engaged_at: Moment | None
    engaged: bool


class ActivityView(BaseModel):
    """A recent engaging behaviour of a member."""

    at: Moment
    contact_id: str
    role: str | None
    behaviour: str


class AccountView(BaseModel):
    """Everything ``accounts show`` prints (``--json`` prints it as is)."""

    account_id: str
    workflow_id: str
    key: str
    name: str | None
    domain: str | None
    owner: str | None
    priority: str
    traits: dict[str, object]
    committee: list[str]
    scores: dict[str, float]
    demand_state: str | None
    stage: str | None
    engaged_contacts: int
    plays: int
    play_active: bool
    members: list[MemberView]
    recent_activity: list[ActivityView]
    live: bool


class AccountRowView(BaseModel):
    """One line of ``accounts list``."""

    account_id: str
    name: str | None
    domain: str | None
    owner: str | None
    members: int
    engaged_contacts: int
    plays: int
    priority: str
    updated_at: Moment


def find_account(value: str, config: AccountsConfig, book: AccountBook) -> list[str]:
    """Account ids ``value`` may name, most likely first: an id, a domain, a group id."""
    if _ACCOUNT_ID.match(value):
        return [value]
    found: list[str] = []
    domain = config.canonical_domain(value)
    if domain is not None:
        found.append(account_id_for(f"domain:{domain}"))
    recorded = book.by_domain(value.strip().casefold())
    if recorded is not None:
        found.append(recorded)
    found.append(account_id_for(f"group:{value}"))
    return list(dict.fromkeys(found))


async def _live(client: Client, account_id: str) -> tuple[AccountState, AccountFacts] | None:
    # Untyped on purpose: mypy mis-solves get_workflow_handle_for here (see starter/cli.py).
    handle = client.get_workflow_handle(account_workflow_id(account_id))
    try:
        return await handle.query(AccountWorkflow.state), await handle.query(AccountWorkflow.facts)
    except RPCError:
        return None


def _members(
    store: Store, members: dict[str, MemberRecord], facts: AccountFacts
) -> list[MemberView]:
    engaged = {m.member for m in facts.engaged}
    views = []
    for contact_id, record in members.items():
        row = store.contact(contact_id)
        views.append(
            MemberView(
                contact_id=contact_id,
                user_id=row.user_id if row else None,
                role=record.role,
                executive=record.executive,
                stage=record.stage,
                fit=record.fit,
                engagement=record.engagement,
                demand_state=record.demand_state,
                via=record.via,
                joined_at=record.joined_at,
                last_engaged_at=record.last_engaged_at,
                engaged=contact_id in engaged,
            )
        )
    return sorted(views, key=lambda m: (not m.engaged, m.contact_id))


def _activity(members: dict[str, MemberRecord], limit: int = 20) -> list[ActivityView]:
    seen: list[tuple[BehaviourSeen, str, str | None]] = [
        (b, contact_id, r.role) for contact_id, r in members.items() for b in r.recent
    ]
    seen.sort(key=lambda item: item[0].at, reverse=True)
    return [
        ActivityView(at=b.at, contact_id=c, role=role, behaviour=b.name)
        for b, c, role in seen[:limit]
    ]


async def load_account_view(
    store: Store, client: Client, value: str, config: AccountsConfig
) -> AccountView:
    """The view of the account ``value`` names; NotFound when none has a workflow or record."""
    book = AccountBook(store)
    for account_id in find_account(value, config, book):
        live = await _live(client, account_id)
        if live is not None:
            state, facts = live
            return _view(
                store, state.key, facts, state.members, state.plays, state.play_active, True
            )
        record = book.get(account_id)
        if record is not None:
            facts = record.facts
            return _view(store, record.key, facts, record.members, record.plays, False, False)
    raise NotFound(f"no account {value!r}")


def _view(
    store: Store,
    key: str,
    facts: AccountFacts,
    members: dict[str, MemberRecord],
    plays: int,
    play_active: bool,
    live: bool,
) -> AccountView:
    return AccountView(
        account_id=facts.account_id,
        workflow_id=account_workflow_id(facts.account_id),
        key=key,
        name=facts.name,
        domain=facts.domain,
        owner=facts.owner,
        priority=facts.priority,
        traits=facts.traits,
        committee=facts.committee,
        scores=facts.scores,
        demand_state=facts.demand_state,
        stage=facts.stage,
        engaged_contacts=len(facts.engaged),
        plays=plays,
        play_active=play_active,
        members=_members(store, members, facts),
        recent_activity=_activity(members),
        live=live,
    )


def print_account(view: AccountView) -> None:
    """The human-readable ``accounts show``."""
    title = view.name or view.domain or view.key
    console.print(f"[bold]{title}[/bold]  account {view.account_id}  ({view.key})")
    console.print(
        f"owner: {view.owner or 'none'}   priority: [bold]{view.priority}[/bold]   "
        f"stage: {view.stage or 'none'}   demand state: {view.demand_state or 'unknown'}"
    )
    scores = view.scores
    console.print(
        f"scores: fit {scores.get('fit', 0):g}, engagement {scores.get('engagement', 0):g}; "
        f"{view.engaged_contacts} engaged of {len(view.members)} member(s); "
        f"account plays: {view.plays}{' (active)' if view.play_active else ''}"
    )
    console.print(f"buying committee: {', '.join(view.committee) or 'nobody yet'}")
    if not view.live:
        console.print("[yellow]no running workflow: showing the stored record[/yellow]")
    table = Table("contact", "user", "role", "stage", "fit", "engagement", "last engaged")
    for m in view.members:
        role = (m.role or "-") + (" (exec)" if m.executive else "")
        last = m.last_engaged_at.isoformat(timespec="minutes") if m.last_engaged_at else "-"
        table.add_row(
            m.contact_id,
            m.user_id or "-",
            role,
            m.stage or "-",
            f"{m.fit:g}",
            f"{m.engagement:g}",
            last,
        )
    console.print(table)
    activity = Table("at", "contact", "role", "behaviour", title="recent activity")
    for a in view.recent_activity:
        activity.add_row(
            a.at.isoformat(timespec="minutes"), a.contact_id, a.role or "-", a.behaviour
        )
    console.print(activity)


def print_accounts(rows: list[AccountRowView]) -> None:
    """The human-readable ``accounts list``."""
    table = Table("account", "name", "domain", "owner", "members", "engaged", "plays", "priority")
    for r in rows:
        table.add_row(
            r.account_id,
            r.name or "-",
            r.domain or "-",
            r.owner or "-",
            str(r.members),
            str(r.engaged_contacts),
            str(r.plays),
            r.priority,
        )
    console.print(table)


@accounts_app.command("show")
def accounts_show(
    account: Annotated[str, typer.Argument(help="An account id, a company domain or a groupId.")],
    as_json: JsonFlag = False,
) -> None:
    """Members, buying committee, scores, demand state, recent activity and owner."""
    current = settings()
    store = open_store(current)
    config = Definitions.of(store, current).get(ACCOUNTS)

    async def _load() -> AccountView:
        client = await connect(current)
        return await load_account_view(store, client, account, config)

    emit(run_async(_load()), as_json, print_account)


@accounts_app.command("list")
def accounts_list(as_json: JsonFlag = False) -> None:
    """Accounts, most engaged first: members, engaged contacts, plays, priority, owner."""
    store = open_store(settings())
    rows = [
        AccountRowView(
            account_id=r.account_id,
            name=r.name,
            domain=r.domain,
            owner=r.owner,
            members=r.members,
            engaged_contacts=r.engaged,
            plays=r.plays,
            priority=r.priority,
            updated_at=r.updated_at,
        )
        for r in AccountBook(store).all()
    ]
    emit(rows, as_json, print_accounts)
