"""`revops reports sla`: attainment per team and rep, speed-to-lead, capacity problems flagged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from analysis.sla_report import percentile, sla_report
from handoff.contract import SlaRecord, TurnRecord
from revops.settings import Settings
from starter.cli import app
from store.repo import Store
from store.sla import SlaBook
from tests.conftest import ID_SECRET

REVOPS = str(Path(sys.executable).parent / "revops")
MQL = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _handoff(
    n: int, team: str, owner: str, *, touch_after: timedelta | None, late: bool
) -> SlaRecord:
    """One handoff: touched ``touch_after`` the MQL (or never), after its deadline if ``late``."""
    mql = MQL + timedelta(days=n % 3)
    deadline = mql + timedelta(minutes=15)
    touched = mql + touch_after if touch_after is not None else None
    turn = TurnRecord(
        seq=0,
        owner=owner,
        team=team,
        assigned_at=mql,
        deadline=deadline,
        breached=late,
        responded_at=touched,
    )
    return SlaRecord(
        handoff_id=f"h-{n}",
        contact_id=f"c{n}",
        trigger="hand_raiser",
        policy="hand-raisers-and-tier-1",
        state="breached" if late else ("met" if touched else "waiting"),
        mql_date=mql,
        assigned_at=mql,
        owner=owner,
        team=team,
        first_contact_date=touched,
        responded_at=touched,
        deadline=deadline,
        sla_met=None if touched is None and not late else not late,
        reminders=1,
        breaches=int(late),
        escalations=int(late),
        reassignments=0,
        outcome=None,
        outcome_reason=None,
        turns=[turn],
        revision=1,
    )


def _records() -> list[SlaRecord]:
    minutes = timedelta(minutes=1)
    amer = [
        _handoff(n, "amer-general", f"rep-a0{2 + n % 2}", touch_after=(n + 5) * minutes, late=False)
        for n in range(9)
    ]
    amer.append(_handoff(9, "amer-general", "rep-a02", touch_after=40 * minutes, late=True))
    emea = [
        _handoff(10 + n, "emea-general", "rep-g01", touch_after=None, late=True) for n in range(3)
    ]
    emea.append(_handoff(13, "emea-general", "rep-g02", touch_after=9 * minutes, late=False))
    return amer + emea


def test_attainment_per_team_and_rep_flags_teams_under_80_percent() -> None:
    report = sla_report(_records(), NOW)
    amer, emea = report.teams
    assert (amer.name, amer.met, amer.breached, amer.attainment) == ("amer-general", 9, 1, 0.9)
    assert (emea.name, emea.met, emea.breached, emea.attainment) == ("emea-general", 1, 3, 0.25)
    assert (amer.capacity_problem, emea.capacity_problem) == (False, True)
    assert amer.median_first_touch == timedelta(minutes=9)
    assert amer.p90_first_touch == timedelta(minutes=13)
    assert [rep.name for rep in report.reps] == ["rep-a02", "rep-a03", "rep-g01", "rep-g02"]
    assert report.overall.attainment == 10 / 14


def test_a_turn_still_inside_its_window_is_open_not_breached() -> None:
    waiting = _handoff(0, "amer-general", "rep-a02", touch_after=None, late=False)
    assert sla_report([waiting], MQL + timedelta(minutes=5)).overall.open == 1
    assert sla_report([waiting], MQL + timedelta(minutes=20)).overall.breached == 1


def test_percentile_is_nearest_rank() -> None:
    values = [timedelta(minutes=m) for m in range(1, 11)]
    assert (percentile(values, 50), percentile(values, 90)) == (
        timedelta(minutes=5),
        timedelta(minutes=9),
    )
    assert percentile([], 50) is None


def test_reports_sla_command_prints_teams_reps_and_the_capacity_problem(
    settings: Settings,
) -> None:
    store = Store.open(settings.sqlalchemy_url, id_secret=ID_SECRET)
    book = SlaBook(store)
    for record in _records():
        book.record(record)
    environ = {
        **os.environ,
        "REVOPS_DATA_DIR": str(settings.data_dir),
        "REVOPS_ID_SECRET": ID_SECRET,
        "REVOPS_CONFIG_DIR": str(settings.config_dir),
        "REVOPS_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    shown = subprocess.run(
        [REVOPS, "reports", "sla", "--since", "2026-11-01"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "emea-general" in shown.stdout and "capacity problem" in shown.stdout
    assert "Capacity problem: emea-general under 80% attainment" in shown.stdout
    as_json = subprocess.run(
        [REVOPS, "reports", "sla", "--since", "2026-11-03", "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(as_json.stdout)["handoffs"] == 9, "only MQLs on or after the date"


def test_reports_sla_refuses_a_date_it_cannot_read() -> None:
    bad = CliRunner().invoke(app, ["reports", "sla", "--since", "last week"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
