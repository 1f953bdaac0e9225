"""Backtest and synthetic history: known answers by hand, agreement with live scoring, the CLI."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analysis import backtest
from analysis.backtest import (
    BacktestReport,
    GateOutcome,
    memberships_for,
    parse_thresholds,
    write_csv,
)
from analysis.synth import generate
from audience.facts import ContactFacts, EventRecord
from definitions import LISTS, SCORING, read_file
from scoring.model import (
    ScoringModel,
    compute_scores,
    evaluate_gate,
    gate_level,
    select_gate,
)
from starter.scoring_cli import scoring_app

REPO = Path(__file__).resolve().parent.parent
MODEL_FILE = REPO / "config" / "scoring.yaml"
T0 = datetime(2025, 3, 1, tzinfo=UTC)
ICP = {
    "industry": "Software",
    "seniority": "VP",
    "company_size": 1200,
    "country": "US",
    "email_domain": "acme.example",
}
STUDENT = {"industry": "Education", "title": "Student", "company_size": 5, "country": "BR"}


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return read_file(SCORING, MODEL_FILE)


def stamp(day: float) -> str:
    return (T0 + timedelta(days=day)).isoformat()


def identify(user: str, day: float, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": stamp(day)}


def track(user: str, day: float, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "properties": properties,
        "timestamp": stamp(day),
    }


def hand_written_history() -> list[dict[str, Any]]:
    """34 contacts whose MQL moments under the default model are easy to work out by hand.

    a        ICP (fit 65), pricing day 1 and 2 (total 90, then 115), qualified by sales day 10
    b0..b8   ICP, one case study (total 80), never qualified
    l0..l19  fit 0, pricing day 1 and 2 (total 50)
    c        fit 0, pricing once (25), qualified by sales day 5: an SQL no threshold catches
    d        a competitor asking for a demo: disqualified
    e        fit 0, demo request day 1 (hand-raiser, total 50), qualified day 3
    g        ICP (65 on fit alone), qualified by sales day 1, pricing on day 5 (total 90): an
             MQL before its SQL at threshold 50, after it at 70
    """
    records = [identify("a", 0, **ICP), track("a", 1, "Pricing Page Viewed")]
    records += [track("a", 2, "Pricing Page Viewed"), track("a", 10, "Lead Qualified")]
    for i in range(9):
        records += [identify(f"b{i}", 0, **ICP), track(f"b{i}", 1, "Case Study Viewed")]
    for i in range(20):
        records += [identify(f"l{i}", 0, **STUDENT), track(f"l{i}", 1, "Pricing Page Viewed")]
        records.append(track(f"l{i}", 2, "Pricing Page Viewed"))
    records += [identify("c", 0, **STUDENT), track("c", 1, "Pricing Page Viewed")]
    records.append(track("c", 5, "Lead Qualified"))
    records += [identify("d", 0, **{**ICP, "email_domain": "rivalcloud.io"})]
    records.append(track("d", 1, "Demo Requested"))
    records += [identify("e", 0, **STUDENT), track("e", 1, "Demo Requested")]
    records.append(track("e", 3, "Lead Qualified"))
    records += [identify("g", 0, **ICP), track("g", 1, "Lead Qualified")]
    records.append(track("g", 5, "Pricing Page Viewed"))
    return records


def row(report: BacktestReport, threshold: int) -> GateOutcome:
    return next(r for r in report.thresholds if r.threshold == threshold)


def counts(outcome: GateOutcome) -> tuple[int, int, int, int]:
    return outcome.mqls, outcome.hand_raiser_mqls, outcome.converted, outcome.sql_missed


# --- Known answers -------------------------------------------------------------------------


def test_backtest_counts_mqls_and_conversion_per_threshold(model: ScoringModel) -> None:
    report = backtest.run(model, hand_written_history(), [50, 70, 100])
    assert (report.events, report.contacts, report.sql_contacts) == (93, 34, 4)
    assert counts(row(report, 50)) == (32, 0, 3, 1)  # fit alone (65) makes g an MQL on day 0
    assert counts(row(report, 70)) == (12, 1, 2, 2)
    assert counts(row(report, 100)) == (2, 1, 2, 2)
    assert row(report, 50).conversion == pytest.approx(3 / 32)
    assert (row(report, 50).flag, row(report, 70).flag, row(report, 100).flag) == (
        "too loose",
        None,
        "too tight",
    )
    assert row(report, 70).healthy and not row(report, 50).healthy


def test_backtest_reports_the_models_own_gate(model: ScoringModel) -> None:
    report = backtest.run(model, hand_written_history(), [50])
    assert report.model_gate.gate == "model gate"
    assert counts(report.model_gate) == (2, 1, 2, 2)  # a on day 2, e by hand-raise


def test_backtest_does_not_depend_on_record_order(model: ScoringModel) -> None:
    history = hand_written_history()
    shuffled = list(history)
    random.Random(4).shuffle(shuffled)
    expected = backtest.run(model, history, [50, 70, 100])
    assert backtest.run(model, shuffled, [50, 70, 100]) == expected


def test_segment_gates_use_the_contacts_lists(model: ScoringModel) -> None:
    history = [identify("h", 0, **ICP), track("h", 1, "Pricing Page Viewed")]
    history.append(track("h", 2, "Webinar Attended"))  # recent engagement 45

    def enterprise(facts: ContactFacts) -> set[str]:
        return {"Enterprise"} if facts.traits.get("company_size", 0) >= 1000 else set()

    default = backtest.run(model, history, [50])
    segmented = backtest.run(model, history, [50], memberships=enterprise)
    assert default.model_gate.mqls == 1
    assert segmented.model_gate.mqls == 0  # Enterprise needs more than 50


def test_old_engagement_has_decayed_by_the_time_fit_arrives(model: ScoringModel) -> None:
    history = [track("late", d, "Pricing Page Viewed") for d in (0, 1, 2, 3)]  # 100, fit 0
    history.append(identify("late", 130, **ICP))  # fit 65 + engagement decayed to 0
    report = backtest.run(model, history, [60, 110])
    assert (row(report, 60).mqls, row(report, 110).mqls) == (1, 0)


def test_unusable_records_are_skipped_and_counted(model: ScoringModel) -> None:
    history = [
        {"type": "track", "event": "Pricing Page Viewed", "timestamp": stamp(1)},
        {"type": "track", "userId": "x", "event": "Pricing Page Viewed", "timestamp": "soon"},
        {"type": "track", "userId": "x", "timestamp": stamp(1)},
        track("x", 1, "Pricing Page Viewed"),
    ]
    report = backtest.run(model, history, [20])
    assert (report.events, report.skipped, report.contacts) == (4, 3, 1)


def test_an_empty_history_has_no_mqls(model: ScoringModel) -> None:
    report = backtest.run(model, [], [50])
    assert row(report, 50).flag == "no MQLs"
    assert row(report, 50).conversion is None


def test_progress_counts_every_event_twice(model: ScoringModel) -> None:
    seen: list[int] = []
    history = list(generate(40, 20_000, seed=3))
    backtest.run(model, history, [60], seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 2 * len(history)


def test_report_writes_as_csv(model: ScoringModel) -> None:
    report = backtest.run(model, hand_written_history(), [50, 70])
    out = io.StringIO()
    write_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["gate"] for r in rows] == ["total >= 50", "total >= 70", "model gate"]
    assert rows[0] == {
        "gate": "total >= 50",
        "threshold": "50",
        "mqls": "32",
        "hand_raiser_mqls": "0",
        "converted": "3",
        "conversion": "0.0938",
        "sql_missed": "1",
        "healthy": "no",
        "flag": "too loose",
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("40:90:5", tuple(range(40, 95, 5))),
        ("60:70", (60, 65, 70)),
        ("80, 50,65", (50, 65, 80)),
    ],
)
def test_threshold_ranges_parse(spec: str, expected: tuple[int, ...]) -> None:
    assert parse_thresholds(spec) == expected


@pytest.mark.parametrize("spec", ["", "a:b", "90:40:5", "40:90:0", "1:2:3:4"])
def test_bad_threshold_ranges_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="threshold"):
        parse_thresholds(spec)


# --- The replay agrees with live scoring ---------------------------------------------------

EVENTS = (
    "Pricing Page Viewed",
    "Case Study Viewed",
    "Email Opened",
    "Webinar Attended",
    "Demo Requested",
    "Contact Sales Submitted",
    "Spam Complaint",
    "Page Viewed",
    "Lead Qualified",
)
TRAITS = st.fixed_dictionaries(
    {},
    optional={
        "company_size": st.sampled_from([5, 150, 500, 1500]),
        "industry": st.sampled_from(["Software", "Retail"]),
        "seniority": st.sampled_from(["VP", "Manager"]),
        "country": st.sampled_from(["US", "BR"]),
        "email_domain": st.sampled_from(["acme.example", "gmail.com", "rivalcloud.io"]),
        "unsubscribed": st.booleans(),
    },
)
STEP = st.one_of(st.sampled_from(EVENTS), TRAITS)


def segments(facts: ContactFacts) -> set[str]:
    size = facts.traits.get("company_size", 0)
    return {"Enterprise"} if size >= 1000 else ({"SMB"} if size < 200 else set())


@dataclass
class Live:
    """First MQL moments found by scoring after every step, and whether a hand-raise did it."""

    first: dict[int, datetime | None]
    by_hand: dict[int, bool]
    model_at: datetime | None = None
    model_by_hand: bool = False
    sql_at: datetime | None = None

    def counts(self, threshold: int | None) -> tuple[int, int, int]:
        at = self.model_at if threshold is None else self.first[threshold]
        by_hand = self.model_by_hand if threshold is None else self.by_hand[threshold]
        if at is None:
            return 0, 0, 0
        return 1, int(by_hand), int(self.sql_at is not None and self.sql_at >= at)


def live_first_mqls(
    model: ScoringModel, steps: list[tuple[int, str | dict[str, Any]]], thresholds: list[int]
) -> Live:
    """Brute force: score the contact after every step the way the contact workflow would."""
    traits: dict[str, Any] = {}
    events: list[EventRecord] = []
    live = Live(first=dict.fromkeys(thresholds), by_hand=dict.fromkeys(thresholds, False))
    for minute, step in sorted(steps, key=lambda s: s[0]):
        now = T0 + timedelta(minutes=minute)
        if isinstance(step, dict):
            traits.update(step)
        else:
            events.append(EventRecord(name=step, at=now))
            live.sql_at = live.sql_at or (now if step == "Lead Qualified" else None)
        facts = ContactFacts(contact_id="p", now=now, traits=dict(traits), events=list(events))
        facts = facts.model_copy(update={"lists": frozenset(segments(facts))})
        card = compute_scores(model, facts)
        gate = evaluate_gate(model, card, facts)
        if live.model_at is None and gate.qualifies:
            own = gate_level(
                select_gate(model, facts.lists)[1],
                card.fit,
                card.engagement,
                card.engagement_recent,
            )
            live.model_at, live.model_by_hand = now, gate.hand_raiser and own is None
        for threshold in thresholds:
            hit = not card.disqualified_by and (gate.hand_raiser or card.total >= threshold)
            if live.first[threshold] is None and hit:
                live.first[threshold] = now
                live.by_hand[threshold] = card.total < threshold
    return live


def replayed(outcome: GateOutcome) -> tuple[int, int, int]:
    return outcome.mqls, outcome.hand_raiser_mqls, outcome.converted


@settings(max_examples=120, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=200 * 24 * 60), STEP),
        max_size=40,
        unique_by=lambda s: s[0],
    )
)
def test_replay_finds_the_same_mql_moments_as_live_scoring(
    model: ScoringModel, steps: list[tuple[int, str | dict[str, Any]]]
) -> None:
    thresholds = [40, 65, 90, 130]
    records = [
        identify("p", minute / 1440, **step)
        if isinstance(step, dict)
        else track("p", minute / 1440, step)
        for minute, step in steps
    ]
    report = backtest.run(model, records, thresholds, memberships=segments)
    live = live_first_mqls(model, steps, thresholds)
    for threshold in thresholds:
        assert replayed(row(report, threshold)) == live.counts(threshold), threshold
    assert replayed(report.model_gate) == live.counts(None)


# --- Synthetic history ---------------------------------------------------------------------


def test_synthetic_history_is_deterministic_for_a_seed() -> None:
    first = list(generate(30, 600, seed=5))
    assert first == list(generate(30, 600, seed=5))
    assert first != list(generate(30, 600, seed=6))


def test_synthetic_history_has_the_asked_size_in_time_order() -> None:
    records = list(generate(50, 2_000, seed=1))
    assert len(records) == 2_000
    assert len({r["userId"] for r in records}) == 50
    assert len({r["messageId"] for r in records}) == 2_000
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in records]
    assert stamps == sorted(stamps)
    firsts: dict[str, str] = {}
    for record in records:
        firsts.setdefault(record["userId"], record["type"])
        assert record["type"] in ("identify", "track")
    assert set(firsts.values()) == {"identify"}


def test_fewer_events_than_contacts_yields_only_identifies() -> None:
    assert [r["type"] for r in generate(10, 3, seed=1)] == ["identify"] * 3


TARGETS = ("Software", "Fintech", "Cybersecurity", "Healthcare Technology")


def events_by_fit(
    records: Iterable[dict[str, Any]],
) -> tuple[Counter[bool], dict[bool, Counter[str]]]:
    """Contacts in / out of a target industry, and how often each group did each event."""
    industry: dict[str, bool] = {}
    by_fit: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    for record in records:
        traits = record.get("traits", {})
        if "industry" in traits:
            industry[record["userId"]] = traits["industry"] in TARGETS
        elif record["type"] == "track":
            by_fit[industry[record["userId"]]][record["event"]] += 1
    return Counter(industry.values()), by_fit


def test_synthetic_buyers_who_fit_engage_more_and_reach_sql_more() -> None:
    contacts, by_fit = events_by_fit(generate(2_000, 40_000, seed=2))
    for event in ("Pricing Page Viewed", "Lead Qualified"):
        per_fit = by_fit[True][event] / contacts[True]
        per_other = by_fit[False][event] / contacts[False]
        assert per_fit > 1.5 * per_other, event


def test_the_default_model_separates_buyers_better_than_a_loose_threshold(
    model: ScoringModel,
) -> None:
    report = backtest.run(model, generate(2_000, 40_000, seed=9), [40])
    assert report.sql_contacts > 20
    loose = row(report, 40)
    assert report.model_gate.conversion is not None and loose.conversion is not None
    assert report.model_gate.conversion > loose.conversion


# --- CLI -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_backtest_without_a_file_replays_the_stored_event_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVOPS_DATA_DIR", str(tmp_path))
    result = runner.invoke(scoring_app, ["backtest", "--model", str(MODEL_FILE)])
    assert result.exit_code == 0, result.output
    assert "stored event log" in result.output
    assert "0 events" in result.output


def test_cli_refuses_an_invalid_model_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\ngates: {default: {fit_above: high}}\n", encoding="utf-8")
    result = runner.invoke(scoring_app, ["backtest", "--model", str(bad), "--events", "x"])
    assert result.exit_code == 2
    assert "gates.default.fit_above" in result.output


def test_cli_refuses_bad_thresholds(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text("", encoding="utf-8")
    args = ["backtest", "--model", str(MODEL_FILE), "--events", str(history)]
    result = runner.invoke(scoring_app, [*args, "--thresholds", "90:40"])
    assert result.exit_code == 2
    assert "--thresholds" in result.output


def test_cli_synth_then_backtest_writes_a_csv_report(tmp_path: Path) -> None:
    history, report = tmp_path / "history.jsonl", tmp_path / "report.csv"
    made = runner.invoke(
        scoring_app,
        ["synth", "--contacts", "200", "--events", "3000", "--seed", "4", "--out", str(history)],
    )
    assert made.exit_code == 0, made.output
    assert len(history.read_text(encoding="utf-8").splitlines()) == 3000
    with history.open("a", encoding="utf-8") as handle:
        handle.write("not json\n")
    result = runner.invoke(
        scoring_app,
        [
            "backtest",
            "--model",
            str(MODEL_FILE),
            "--events",
            str(history),
            "--thresholds",
            "50:70:10",
            "--csv",
            str(report),
            "--lists",
            str(REPO / "config" / "lists.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "total >= 60" in result.output
    assert "Skipped 1 unusable records" in result.output
    lines = report.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("gate,threshold,mqls")
    assert len(lines) == 5  # header, three thresholds, the model gate


def test_segment_memberships_come_from_the_lists_file_for_the_lists_the_model_reads(
    model: ScoringModel,
) -> None:
    lists = read_file(LISTS, REPO / "config" / "lists.yaml")
    members = memberships_for(model, lists)
    for size, expected in ((5000, {"Enterprise"}), (500, set()), (20, {"SMB"})):
        facts = ContactFacts(contact_id="m", now=T0, traits={**ICP, "company_size": size})
        assert members(facts) == expected  # Mid-Market is not read by the default model


def test_signals_history_adds_the_new_signals_and_leaves_the_plain_one_unchanged() -> None:
    plain = list(generate(40, 2_000, seed=2))
    assert plain == list(generate(40, 2_000, seed=2, signals=False))
    rich = list(generate(400, 8_000, seed=2, signals=True))
    names = {r.get("event") for r in rich}
    assert {"Feature Used", "Email Replied", "Meeting Booked", "Event Attended"} <= names
    identifies = [r["traits"] for r in rich if r["type"] == "identify" and "title" in r["traits"]]
    assert all(isinstance(t["tech_stack"], list) for t in identifies)
    assert any(t["title"] in ("Student", "Job Seeker", "Intern") for t in identifies)
