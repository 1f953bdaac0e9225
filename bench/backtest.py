"""Backtest throughput on a synthetic history, against a parse-only baseline in the same run.

The backtest must replay a million events in under a minute on a 2-core machine (ops engineers
run it on every candidate model). Both figures read the same JSONL lines: the baseline only
parses them and touches each record; the backtest parses them and replays every contact with
the default model, segment lists and eleven thresholds, as ``revops scoring backtest`` does.
Run: ``.venv/bin/python bench/backtest.py [--events N] [--contacts N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

from analysis.backtest import memberships_for, parse_thresholds, run
from analysis.synth import generate
from definitions import LISTS, SCORING, read_file

REPO = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 60.0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=0, help="default: events / 20")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def _parsed(lines: list[bytes]) -> Iterator[dict[str, object]]:
    for line in lines:
        yield json.loads(line)


def _baseline(lines: list[bytes]) -> float:
    """Parse every line and touch the fields the backtest needs; nothing else."""
    start = time.perf_counter()
    users = set()
    for record in _parsed(lines):
        users.add(record.get("userId"))
        record.get("timestamp")
        record.get("event")
    return time.perf_counter() - start


def main() -> None:
    """Generate, measure the baseline, measure the backtest, print the figures."""
    args = _arguments()
    contacts = args.contacts or max(1, args.events // 20)
    start = time.perf_counter()
    lines = [
        json.dumps(r, separators=(",", ":")).encode()
        for r in generate(contacts, args.events, args.seed)
    ]
    made = time.perf_counter() - start
    model = read_file(SCORING, REPO / "config" / "scoring.yaml")
    lists = read_file(LISTS, REPO / "config" / "lists.yaml")

    baseline = _baseline(lines)
    start = time.perf_counter()
    report = run(
        model,
        _parsed(lines),
        parse_thresholds("40:90:5"),
        memberships=memberships_for(model, lists),
    )
    replay = time.perf_counter() - start
    count = len(lines)
    print(f"history: {count:,} events, {report.contacts:,} contacts (generated in {made:.1f} s)")
    print(f"baseline (parse only): {baseline:6.2f} s  {count / baseline:>12,.0f} events/s")
    print(f"backtest (parse+replay): {replay:4.2f} s  {count / replay:>12,.0f} events/s")
    print(f"ratio backtest/baseline: {replay / baseline:.2f}x")
    verdict = "OK" if replay < LIMIT_SECONDS * count / 1_000_000 else "TOO SLOW"
    print(f"target: 1,000,000 events under {LIMIT_SECONDS:.0f} s -> {verdict}")
    print(
        f"model gate: {report.model_gate.mqls:,} MQLs, "
        f"{report.model_gate.conversion or 0:.1%} MQL-to-SQL"
    )


if __name__ == "__main__":
    main()
