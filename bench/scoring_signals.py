"""The figures behind the default model's signals (docs/scoring.md, "Signals and their backtest").

One synthetic history with the seed 000/002 signals (``revops scoring synth --signals``: feature
usage, email replies, meetings booked, event participation, tech stacks, students and job
seekers) is replayed with the existing backtest (``analysis.backtest.run``, what
``revops scoring backtest`` runs) under: the previous model (2026.1: none of the signals), the
shipped model (2026.2), and the shipped model without each new rule in turn. Each rule is kept
when taking it out makes the model gate worse (fewer converting MQLs, or lower conversion).
Run: ``.venv/bin/python bench/scoring_signals.py [--contacts N] [--events N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml

from analysis.backtest import GateOutcome, memberships_for, run
from analysis.synth import generate
from definitions import LISTS, read_file
from scoring.model import parse_scoring_model

REPO = Path(__file__).resolve().parent.parent
NEW_RULES = {
    "fit": ["tech_stack_fit"],
    "engagement": ["feature_usage", "email_reply", "meeting_booked", "event_participation"],
    "negative": ["student_or_job_seeker"],
}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def _without(body: dict[str, Any], names: set[str]) -> dict[str, Any]:
    trimmed = copy.deepcopy(body)
    for side in NEW_RULES:
        trimmed[side] = [rule for rule in trimmed[side] if rule["name"] not in names]
    return trimmed


THRESHOLD = 70
"""A single-score gate (fit + engagement >= 70, as seed 001's model uses) beside the model's
own combined gate: students are kept out of a combined gate by fit alone, not out of this."""


def _rate(gate: GateOutcome) -> str:
    return f"{gate.conversion:.1%}" if gate.conversion is not None else "-"


def _line(name: str, gate: GateOutcome, single: GateOutcome) -> str:
    return (
        f"| {name} | {gate.mqls:,} | {gate.converted:,} | {_rate(gate)} | {gate.sql_missed:,} "
        f"| {single.mqls:,} | {single.converted:,} | {_rate(single)} |"
    )


def main() -> None:
    """Generate once, backtest every variant, print a Markdown table of the model gate."""
    args = _arguments()
    history = list(generate(args.contacts, args.events, args.seed, signals=True))
    body = yaml.safe_load((REPO / "config" / "scoring.yaml").read_text(encoding="utf-8"))
    lists = read_file(LISTS, REPO / "config" / "lists.yaml")
    every_new = {name for names in NEW_RULES.values() for name in names}
    variants = [("previous model (no signals)", every_new), ("shipped model", set())]
    variants += [(f"shipped without {name}", {name}) for name in sorted(every_new)]
    print(f"history: {len(history):,} events, {args.contacts:,} contacts, seed {args.seed}")
    print(
        "| model | gate MQLs | converted | conversion | SQLs missed "
        f"| >= {THRESHOLD} MQLs | converted | conversion |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, dropped in variants:
        model = parse_scoring_model(_without(body, dropped), source=name)
        memberships = memberships_for(model, lists)
        report = run(model, iter(history), (THRESHOLD,), memberships=memberships)
        print(_line(name, report.model_gate, report.thresholds[0]))


if __name__ == "__main__":
    main()
