"""``revops contacts import``, ``revops crm status`` and ``revops crm resync``, run as a user runs
them (subprocesses against a real store, Temporal and the local HubSpot)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.crm import CrmBook
from store.erase import Privacy
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.hubspot_server import TOKEN, hubspot_server
from tests.scenario_support import compressed_config, stack
from tests.test_cli import _revops
from tests.test_crm_push import hubspot_config

ROWS = [
    ["Email", "First Name", "Company Size", "Newsletter", "Account", "HubSpot Id", "Notes"],
    ["ana@acme.io", "Ana", "450", "yes", "acct-acme", "", "met at the fair"],
    ["bo@acme.io", "Bo", "450", "no", "acct-acme", "", ""],
    ["not-an-address", "Cy", "10", "yes", "", "", ""],
    ["", "Nameless", "10", "", "", "", ""],
    ["ana@acme.io", "Ana again", "450", "yes", "", "", ""],
    ["dee@beta.io", "Dee", "20", "maybe", "", "", ""],
]
MAP = [
    "--map",
    "Newsletter=consent:subscribed",
    "--map",
    "HubSpot Id=crm_id",
    "--map",
    "Notes=ignore",
]


ONLY_ID = ["--map", "HubSpot Id=crm_id"]


def _csv(folder: Path, rows: list[list[str]]) -> Path:
    path = folder / "contacts.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _environ(
    settings: Settings, env: WorkflowEnvironment | None = None, **extra: str
) -> dict[str, str]:
    environ = {
        **os.environ,
        "REVOPS_DATA_DIR": str(settings.data_dir),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(settings.config_dir),
        "REVOPS_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
        **extra,
    }
    if env is not None:
        environ["REVOPS_TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
    return environ


async def test_an_import_with_bad_rows_reports_each_and_stores_nothing_unless_asked(
    settings: Settings, tmp_path: Path
) -> None:
    environ = _environ(settings)
    path = _csv(tmp_path, ROWS)
    report = tmp_path / "rejected.csv"
    refused = await _revops(environ, "contacts", "import", str(path), *MAP, "--report", str(report))
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    nothing = store.row_counts()
    done = await _revops(environ, "contacts", "import", str(path), *MAP, "--skip-invalid")
    again = await _revops(environ, "contacts", "import", str(path), *MAP, "--skip-invalid")
    unknown = await _revops(environ, "contacts", "import", str(path), "--map", "Email=phone")
    ana = store.contact(store.resolve("ana@acme.io") or "")
    bo = store.contact(store.resolve("bo@acme.io") or "")
    counts = store.row_counts()
    with report.open(encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert refused.returncode == 2 and "4 row(s) rejected: nothing imported" in refused.stderr
    assert "row 4: Email: 'not-an-address' is not an email address" in refused.stderr
    assert nothing["events"] == 0 and nothing["contacts"] == 0, "nothing half-stored"
    assert [(r["row"], r["reason"]) for r in rejected] == [
        ("4", "Email: 'not-an-address' is not an email address"),
        ("5", "no user id and no email: the contact cannot be named"),
        ("6", "the same contact as row 2"),
        ("7", "Newsletter: 'maybe' is not yes or no"),
    ]
    assert done.returncode == 0, done.stderr
    assert "2 contact(s) imported (4 event(s) stored, 0 already there)" in done.stdout
    assert "(0 event(s) stored, 4 already there)" in again.stdout, "importing again: no repeat"
    assert unknown.returncode == 2 and "unknown target 'phone'" in unknown.stderr
    assert ana is not None and bo is not None
    assert ana.email == "ana@acme.io" and ana.traits["company_size"] == 450
    assert ana.traits["first_name"] == "Ana" and "notes" not in ana.traits
    assert ana.account_id == "acct-acme"
    assert bo.consent.get("subscribed") is False, "consent arrives as the gateway takes it"
    assert counts["outbox"] == 4, "queued for the relay like any accepted event"


async def test_imported_contacts_reach_their_workflows_and_show_traits_consent_and_crm_id(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = compressed_config(tmp_path)
    async with stack(env.client, store, settings, config) as s:
        ana, bo = s.user("u-ana"), s.user("u-bo")
        path = _csv(
            tmp_path,
            [
                [
                    "User",
                    "Email",
                    "First Name",
                    "Company Size",
                    "Newsletter",
                    "GDPR",
                    "Account",
                    "Id",
                ],
                [ana, f"{ana}@acme.io", "Ana", "450", "yes", "yes", "acct-acme", "0031000001"],
                [bo, f"{bo}@acme.io", "Bo", "20", "no", "no", "acct-acme", ""],
            ],
        )
        mapping = ["User=user_id", "Newsletter=consent:subscribed", "GDPR=consent:gdpr_consent"]
        args = [arg for pair in [*mapping, "Id=crm_id"] for arg in ("--map", pair)]
        done = await s.cli("contacts", "import", str(path), *args)
        assert done.returncode == 0, done.stderr
        await s.contact(ana, lambda c: c.account_id == "acct-acme")
        await s.contact(bo, lambda c: not c.consent.marketing_allowed)
        shown, shown_bo = await s.show(ana), await s.show(bo)
        human = await s.cli("contacts", "show", ana)
    assert shown["live"] and shown["stage"] is not None, "the contact's workflow runs"
    assert shown["profile"]["first_name"] == "Ana" and shown["profile"]["company_size"] == 450
    assert shown["account_id"] == "acct-acme"
    assert shown["consent"]["subscribed"] is True and shown["consent"]["gdpr_consent"] is True
    assert shown["event_counts"] == {"Identify": 1, "Group": 1}, "the imported events, once"
    assert "Mid-Market" in shown["lists"], "the workflow lists the contact by its traits"
    assert shown["crm"] == {
        "provider": "crm",
        "crm_id": "0031000001",
        "pushes": 0,
        "synced_at": None,
    }
    assert shown_bo["consent"]["subscribed"] is False
    assert shown_bo["consent"]["gdpr_consent"] is False and shown_bo["crm"] is None
    assert "crm: crm 0031000001 (not pushed yet)" in human.stdout


async def test_status_and_resync_against_hubspot_with_a_dry_run_first(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    with hubspot_server() as hubspot:
        existing = hubspot.add_contact("ana@acme.io", firstname="Anabel")
        config = hubspot_config(tmp_path)
        environ = _environ(
            settings,
            env,
            REVOPS_CONFIG_DIR=str(config),
            REVOPS_JOURNEYS_DIR=str(config / "journeys"),
            REVOPS_HUBSPOT_ACCESS_TOKEN=TOKEN,
            REVOPS_HUBSPOT_API_URL=hubspot.url,
        )
        rows = [ROWS[0], ROWS[1], ROWS[2]]
        rows[1] = [*rows[1][:5], existing, ""]
        imported = await _revops(environ, "contacts", "import", str(_csv(tmp_path, rows)), *MAP)
        planned = await _revops(environ, "crm", "resync", "--all", "--dry-run")
        after_plan = len(hubspot.records("contacts"))
        pushed = await _revops(environ, "crm", "resync", "ana@acme.io", "bo@acme.io")
        status = await _revops(environ, "crm", "status", "--json")
        neither = await _revops(environ, "crm", "resync")
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    assert imported.returncode == 0, imported.stderr
    assert CrmBook(store).crm_id(store.resolve("ana@acme.io") or "") == existing
    assert planned.returncode == 0, planned.stderr
    assert "ana@acme.io: no change" in planned.stdout, "the name the CRM holds is kept"
    assert "bo@acme.io: create: firstname='Bo'" in planned.stdout
    assert after_plan == 1, "a dry run writes nothing"
    assert pushed.returncode == 0, pushed.stderr
    assert "2 contact(s) pushed to hubspot; backlog 0" in pushed.stdout
    bo = hubspot.contact("bo@acme.io")
    assert bo is not None and bo["firstname"] == "Bo"
    assert (hubspot.contact("ana@acme.io") or {})["firstname"] == "Anabel"
    view = json.loads(status.stdout)
    assert view["provider"] == "hubspot" and view["configured"] is True
    assert view["backlog"] == 0 and view["linked"] == 2 and view["last_sync_at"]
    assert view["headroom"]["limit"] == 100
    assert neither.returncode == 2 and "user ids or --all" in neither.stderr


async def test_an_import_refuses_an_erased_person_and_writes_nothing_about_them(
    settings: Settings, tmp_path: Path
) -> None:
    """An erased person in a CRM export comes back as nothing: no events, no CRM link."""
    environ = _environ(settings)
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    first = _csv(tmp_path, [["Email", "HubSpot Id"], ["gone@acme.io", "901"]])
    assert (await _revops(environ, "contacts", "import", str(first), *ONLY_ID)).returncode == 0
    privacy = Privacy(store)
    subject = privacy.find("gone@acme.io")
    assert subject is not None
    privacy.begin(subject, erased_by="dpo", reason="GDPR Art. 17 request")
    privacy.erase(subject)
    again = _csv(tmp_path, [["Email", "HubSpot Id"], ["gone@acme.io", "901"]])
    result = await _revops(environ, "contacts", "import", str(again), *ONLY_ID)
    counts = store.row_counts()
    assert result.returncode == 0, result.stderr
    assert "event(s) of erased people refused" in result.stdout
    assert store.resolve("gone@acme.io") is None
    assert counts["events"] == 0 and counts["crm_links"] == 0 and counts["contacts"] == 0
