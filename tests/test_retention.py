"""Event retention (docs/privacy.md): a Temporal Schedule's run turns events older than the
configured age into daily counts, deletes them, and reports what it removed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from models.retention import RetentionReport
from revops.settings import Settings
from starter.retention_cli import retention_schedule
from store.repo import Store
from store.retention import Retention
from tests.conftest import ID_SECRET
from tests.support import eventually, running_worker, save_history, send, track
from tests.test_cli import _cli_env, _revops


async def test_a_scheduled_run_turns_old_events_into_daily_counts_and_reports_them(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    old = datetime.now(UTC) - timedelta(days=400)
    events = [
        track("u-old", "Pricing Page Viewed", at=old + timedelta(minutes=i)) for i in range(3)
    ]
    visitor = track(None, "Page Viewed", anonymous_id="anon-old", at=old, type_="page")
    schedule_id = f"retention-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, store, settings, children=False) as relay:
        await send(store, relay, *events, visitor, track("u-old", "Signed Up"))
        plan = retention_schedule(env.client, settings, 365, timedelta(days=1))
        handle = await env.client.create_schedule(schedule_id, plan)
        try:
            await handle.trigger()
            runs = await eventually(lambda: _runs(store), lambda r: len(r) == 1, within=60)
        finally:
            await handle.delete()
        query = f"WorkflowType = 'RetentionWorkflow' AND TaskQueue = '{settings.task_queue}'"
        (started,) = [w.id async for w in env.client.list_workflows(query)]
        await env.client.get_workflow_handle(started).result()
        await save_history(env.client.get_workflow_handle(started), "retention_run")
        shown = await _revops(_cli_env(env, settings), "retention", "report", "--json")
    (run,) = runs
    assert run.events_removed == 4
    assert run.by_event == {"Pricing Page Viewed": 3, "Page Viewed": 1}
    counts = {(a.day, a.name): a.events for a in Retention(store).aggregates()}
    assert counts == {
        (old.date().isoformat(), "Pricing Page Viewed"): 3,
        (old.date().isoformat(), "Page Viewed"): 1,
    }
    assert store.row_counts()["events"] == 1, "the recent event stays"
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["runs"][0]["events_removed"] == 4


async def _runs(store: Store) -> list[RetentionReport]:
    return Retention(store).runs()
