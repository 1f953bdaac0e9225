"""Every revenue report over a large store: 1M events, 100k contacts, on SQLite and PostgreSQL.

Generates a store in bulk (DB-API ``executemany`` on SQLite, ``COPY`` on PostgreSQL): 100k
contacts with 1M events (UTM-tagged page views, journey opens and clicks, webinars, form
fills, sales activity for ~8k opportunities, all queued in the outbox as accepts leave them),
~230k stage entries (5% of contacts recycled), SLA records, 150k journey sends, segment and
other list memberships. Then, once each, timed:

- building the report summaries from scratch (what a store migrated from 1.0.0 pays on its
  first report), and a refresh when they are current (what every report pays);
- each report: funnel, velocity, attribution (every model), journeys, forecast, list sizes,
  the SLA report, and the whole dashboard page (all of them together);
- recording one stage entry with its funnel summary on the full tables (the write path).

Target: every report under 5 s on both (the one-off summary build, the write path and the
whole dashboard page, several reports side by side, are shown but not held to it).
Run: ``.venv/bin/python bench/reports.py`` (a few minutes; ``--contacts`` and ``--events``
scale it; ``--only sqlite|postgresql``). PostgreSQL
is the one at ``REVOPS_BENCH_PG_URL`` (default: the test database), in a schema of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.attribution import AttributionDefinition, parse_attribution
from analysis.report_window import ReportWindow
from analysis.sla_report import sla_report
from definitions import Definitions
from gateway.dashboard import Filters, overview
from lifecycle.stages import Stage, StageEntry
from revops.yamlio import read_yaml
from store.registry import Registry
from store.repo import Store
from store.reports import ReportBook
from store.sla import SlaBook

PG_URL = os.environ.get("REVOPS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_reports"
END = datetime(2026, 12, 1, tzinfo=UTC)
DAYS = 365
STAGES = ("Subscriber", "Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer")
CHANNELS = (("google", "cpc"), ("linkedin", "paid_social"), ("news", "email"), ("x", "social"))
CAMPAIGNS = tuple(f"campaign-{n}" for n in range(40))
JOURNEYS = ("whitepaper-nurture", "webinar", "trial-onboarding", "demand-state-nurture")
SEGMENTS = ("Enterprise", "Mid-Market", "SMB")
TEAMS = ("amer-general", "emea-general", "amer-enterprise", "apac")
TARGET = 5.0
CONFIG = Path(__file__).resolve().parent.parent / "config"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


# ---- generating ------------------------------------------------------------------------------


def _cid(n: int) -> str:
    return f"c{n:019x}"


class History:
    """The generated rows, table by table (deterministic for a seed)."""

    def __init__(self, contacts: int, events: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.contacts = contacts
        self.events = events
        self.first_seen = [END - timedelta(days=self.rng.uniform(5, DAYS)) for _ in range(contacts)]
        self.journeys: list[tuple[int, str]] = []
        self.stage_rows: list[tuple[Any, ...]] = []
        self.opportunities: list[tuple[int, datetime, datetime | None, float]] = []
        self._stages()

    def _stages(self) -> None:
        rng = self.rng
        for n in range(self.contacts):
            at = self.first_seen[n] + timedelta(hours=rng.uniform(0, 48))
            top = 1
            for rank, chance in ((2, 0.3), (3, 0.6), (4, 0.7), (5, 0.7), (6, 0.35)):
                if rng.random() < chance:
                    top = rank
                else:
                    break
            start = 0 if rng.random() < 0.3 else 1
            for rank in range(start, top + 1):
                if rank == 3 and rng.random() < 0.3:
                    continue  # straight from MQL to SQL
                self.stage_rows.append((_cid(n), STAGES[rank], at, "bench", False))
                if rank == 5:
                    won = at + timedelta(days=rng.uniform(10, 60)) if top == 6 else None
                    self.opportunities.append((n, at, won, round(rng.uniform(5e3, 1.2e5), 2)))
                at += timedelta(hours=rng.expovariate(1 / 120))
            if rng.random() < 0.05:  # recycled: back to Lead, maybe MQL again
                at += timedelta(days=rng.uniform(20, 90))
                self.stage_rows.append((_cid(n), "Lead", at, "recycled", True))
                if rng.random() < 0.5:
                    self.stage_rows.append((_cid(n), "MQL", at + timedelta(days=3), "bench", False))

    def contact_rows(self) -> Iterator[tuple[Any, ...]]:
        for n in range(self.contacts):
            seen = self.first_seen[n]
            traits = json.dumps({"company_size": 50 + (n * 37) % 3000})
            yield (_cid(n), f"u-{n}", None, traits, f"acct-{n // 3}", "{}", None, None, seen, seen)

    def event_rows(self) -> Iterator[tuple[Any, ...]]:
        """(message_id, type, name, user_id, contact_id, properties, context, timestamp)."""
        rng = self.rng
        sales = 0
        for n, created, won, amount in self.opportunities:
            opp = f"opp-{n}"
            for activity, at, value in (
                ("opportunity_created", created, amount),
                ("closed_won", won, amount),
            ):
                if at is None:
                    continue
                sold = {"activity": activity, "opportunity_id": opp, "amount": value}
                name = "Opportunity Created" if activity == "opportunity_created" else "Closed Won"
                yield (f"s-{sales}", "sales", name, f"u-{n}", _cid(n), json.dumps(sold), "{}", at)
                sales += 1
        for index in range(self.events - sales):
            n = rng.randrange(self.contacts)
            at = self.first_seen[n] + timedelta(hours=rng.uniform(-240, 24 * 120))
            at = min(at, END - timedelta(minutes=1))
            roll = rng.random()
            props: dict[str, Any] = {}
            context: dict[str, Any] = {}
            kind, name = "track", "Page Viewed"
            if roll < 0.35:
                kind, name = "page", "Page Viewed"
                props = {"path": "/blog/x"}
                if rng.random() < 0.5:
                    source, medium = CHANNELS[rng.randrange(len(CHANNELS))]
                    context = {
                        "campaign": {
                            "source": source,
                            "medium": medium,
                            "name": CAMPAIGNS[rng.randrange(len(CAMPAIGNS))],
                        }
                    }
            elif roll < 0.65:
                name = "Email Opened"
                props = {"journey": JOURNEYS[n % 4], "step": f"s{rng.randrange(4)}"}
            elif roll < 0.72:
                name = "Email Clicked"
                props = {"journey": JOURNEYS[n % 4], "step": f"s{rng.randrange(4)}"}
            elif roll < 0.75:
                name = "Webinar Attended"
                props = {"webinar": f"webinar-{rng.randrange(12)}"}
            elif roll < 0.82:
                name = "Form Submitted"
                source, medium = CHANNELS[rng.randrange(len(CHANNELS))]
                props = {"utm_source": source, "utm_medium": medium, "utm_campaign": "forms"}
            else:
                name = "Pricing Page Viewed"
            yield (
                f"e-{index}",
                kind,
                name,
                f"u-{n}",
                _cid(n),
                json.dumps(props),
                json.dumps(context),
                at,
            )

    def sla_rows(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        for contact, stage, at, _, _ in self.stage_rows:
            if stage != "MQL":
                continue
            team = TEAMS[rng.randrange(len(TEAMS))]
            touched = (
                at + timedelta(minutes=rng.expovariate(1 / 40)) if rng.random() < 0.9 else None
            )
            outcome = rng.choice((None, None, "rejected", "closed_won", "closed_lost"))
            reason = rng.choice(("No budget", "Bad timing", "Not a fit")) if outcome else None
            turn = {
                "seq": 0,
                "owner": f"rep-{rng.randrange(40)}",
                "team": team,
                "assigned_at": at.isoformat(),
                "deadline": (at + timedelta(minutes=30)).isoformat(),
                "breached": touched is None or touched > at + timedelta(minutes=30),
                "responded_at": touched.isoformat() if touched else None,
            }
            state = "accepted" if outcome in ("closed_won", "closed_lost") else outcome or "met"
            yield (
                f"h-{contact}-{at.timestamp():.0f}", contact, "mql", None, state, at, at,
                turn["owner"], team, touched, touched, at + timedelta(minutes=30), None, 0, 0, 0, 0,
                outcome, reason, json.dumps([turn]), 1, at,
            )  # fmt: skip

    def send_rows(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        for index in range(150_000 * self.contacts // 100_000):
            n = rng.randrange(self.contacts)
            journey = JOURNEYS[n % 4]
            step = f"s{rng.randrange(4)}"
            at = self.first_seen[n] + timedelta(days=rng.uniform(0, 60))
            yield (
                f"{_cid(n)}/{_cid(n)}-1/{step}-{index}", _cid(n), "email", True, step, "sent", 1,
                "", at, at, journey, step,
            )  # fmt: skip

    def membership_rows(self) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        for n in range(self.contacts):
            seen = self.first_seen[n]
            yield (_cid(n), SEGMENTS[n % 3], seen, None, "")
            if rng.random() < 0.6:
                left = seen + timedelta(days=rng.uniform(1, 90)) if rng.random() < 0.5 else None
                name = rng.choice(("Engaged Last 30 Days", "Pricing Engaged ICP", "Re-nurture"))
                yield (_cid(n), name, seen, left if left and left < END else None, "")


_COLUMNS = {
    "contacts": "contact_id, user_id, email, traits, account_id, consent, stage, merged_into, "
    "created_at, updated_at",
    "events": "message_id, type, name, user_id, contact_id, properties, context, timestamp, "
    "traits, received_at",
    "stage_history": "contact_id, stage, entered_at, reason, override",
    "sla_records": "handoff_id, contact_id, trigger, policy, state, mql_date, assigned_at, owner, "
    "team, first_contact_date, responded_at, deadline, sla_met, reminders, breaches, escalations, "
    "reassignments, outcome, outcome_reason, turns, revision, updated_at",
    "sends": "key, contact_id, channel, marketing, summary, status, attempts, detail, created_at, "
    "sent_at, journey, step",
    "list_memberships": "contact_id, list_name, entered_at, left_at, reason",
}


def _event_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row, "{}", row[7])


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _load_sqlite(store: Store, tables: dict[str, Callable[[], Iterator[tuple[Any, ...]]]]) -> None:
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, rows in tables.items():
            columns = _COLUMNS[table]
            marks = ", ".join("?" for _ in columns.split(","))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            batch: list[tuple[Any, ...]] = []
            for row in rows():
                batch.append(tuple(_sqlite_value(v) for v in row))
                if len(batch) == 50_000:
                    cursor.executemany(sql, batch)
                    batch = []
            cursor.executemany(sql, batch)
        cursor.execute(
            "INSERT INTO outbox (event_id, contact_id, created_at, delivered_at, attempts) "
            "SELECT id, contact_id, received_at, received_at, 1 FROM events ORDER BY id"
        )
        raw.commit()
    finally:
        raw.close()


def _load_postgresql(
    store: Store, tables: dict[str, Callable[[], Iterator[tuple[Any, ...]]]]
) -> None:
    raw = store.engine.raw_connection()
    try:
        cursor: Any = raw.cursor()
        for table, rows in tables.items():
            with cursor.copy(f"COPY {table} ({_COLUMNS[table]}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
        cursor.execute(
            "INSERT INTO outbox (event_id, contact_id, created_at, delivered_at, attempts) "
            "SELECT id, contact_id, received_at, received_at, 1 FROM events ORDER BY id"
        )
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def generate(store: Store, history: History) -> None:
    """Write the history in bulk (the store's schema is migrated already)."""
    tables: dict[str, Callable[[], Iterator[tuple[Any, ...]]]] = {
        "contacts": history.contact_rows,
        "events": lambda: map(_event_row, history.event_rows()),
        "stage_history": lambda: iter(history.stage_rows),
        "sla_records": history.sla_rows,
        "sends": history.send_rows,
        "list_memberships": history.membership_rows,
    }
    if store.engine.dialect.name == "sqlite":
        _load_sqlite(store, tables)
    else:
        _load_postgresql(store, tables)


# ---- measuring -------------------------------------------------------------------------------


def _timed(label: str, work: Callable[[], Any], figures: dict[str, float]) -> Any:
    started = time.perf_counter()
    result = work()
    figures[label] = time.perf_counter() - started
    return result


def measure(store: Store, definition: AttributionDefinition) -> dict[str, float]:
    """Seconds per step, each run once on the generated store."""
    figures: dict[str, float] = {}
    book = ReportBook(store, definition)
    _timed("summaries built from scratch (once)", book.refresh, figures)
    _timed("refresh, summaries current", book.refresh, figures)
    now = datetime.now(UTC)
    year = ReportWindow(since=END - timedelta(days=DAYS), until=END, generated_at=now)
    quarter = ReportWindow(since=END - timedelta(days=90), until=END, generated_at=now)
    _timed("funnel (a year)", lambda: book.funnel(year), figures)
    _timed("funnel (a year, one segment)", lambda: book.funnel(
        year.model_copy(update={"segment": "Enterprise"})), figures)  # fmt: skip
    _timed("velocity (a year)", lambda: book.velocity(year), figures)
    for model in definition.models:

        def attribution(chosen: str = model) -> Any:
            return book.attribution(year, chosen)

        _timed(f"attribution {model} (a year)", attribution, figures)
    _timed("journeys (a year)", lambda: book.journeys(year), figures)
    trailing = year.model_copy(update={"since": END - definition.forecast_window})
    _timed("forecast (180-day window)", lambda: book.forecast(trailing), figures)
    _timed("list sizes (90 days)", lambda: book.list_sizes(quarter), figures)

    def sla() -> Any:
        records = SlaBook(store).records(since=quarter.since)
        return sla_report(records, now, since=quarter.since)

    _timed("SLA report (90 days)", sla, figures)

    definitions = Definitions(Registry(store), CONFIG)
    last_day = (END - timedelta(days=1)).date()
    query = {"since": (last_day - timedelta(days=89)).isoformat(), "until": last_day.isoformat()}
    filters = Filters(query, list(definition.models), list(definition.segments))
    _timed(
        "dashboard page (every report, 90 days)",
        lambda: overview(store, definitions, filters),
        figures,
    )
    entry = StageEntry(stage=Stage.MQL, at=END, reason="bench")
    _timed(
        "record a stage entry + its funnel summary",
        lambda: store.record_stage_entries(_cid(7), [entry]),
        figures,
    )
    return figures


def _counts(store: Store) -> str:
    with store.engine.connect() as connection:
        found = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("contacts", "events", "stage_history", "report_touchpoints")
        }
    return ", ".join(f"{table} {count:,}" for table, count in found.items())


def run(name: str, url: str, args: argparse.Namespace, definition: AttributionDefinition) -> bool:
    store = Store.open(url, id_secret="bench")
    history = History(args.contacts, args.events, args.seed)
    started = time.perf_counter()
    generate(store, history)
    print(f"\n{name}: generated in {time.perf_counter() - started:.0f} s", flush=True)
    figures = measure(store, definition)
    print(f"{name}: {_counts(store)}")
    ok = True
    for label, seconds in figures.items():
        report = not label.startswith(("summaries built", "record a stage", "dashboard page"))
        over = report and seconds >= TARGET
        ok = ok and not over
        flag = "  OVER 5 s" if over else ""
        print(f"  {label:<46} {seconds * 1000:9.0f} ms{flag}")
    store.engine.dispose()
    return ok


def _pg_url() -> str | None:
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    except Exception as exc:
        print(f"PostgreSQL at {PG_URL} is unreachable, skipped: {exc}")
        return None
    finally:
        engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{SCHEMA}"


def main() -> None:
    args = _arguments()
    config = CONFIG / "attribution.yaml"
    definition = parse_attribution(read_yaml(config), str(config))
    print(
        f"Reports over {args.contacts:,} contacts and {args.events:,} events "
        f"(every report under {TARGET:g} s)"
    )
    ok = True
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            ok = run("SQLite", f"sqlite:///{folder}/bench.db", args, definition) and ok
    if args.only in (None, "postgresql"):
        url = _pg_url()
        if url is not None:
            ok = run("PostgreSQL", url, args, definition) and ok
    print("\nevery report under 5 s" if ok else "\nSOME REPORT TOOK 5 s OR MORE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
