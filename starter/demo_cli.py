"""``revops demo seed``: realistic traffic for a running stack (see ``starter.demo``)."""

from __future__ import annotations

from typing import Annotated

import typer

from revops.temporal import connect
from starter.common import console, err, open_store, run_async, settings
from starter.demo import SeedSummary, seed
from starter.output import JsonFlag, emit

__all__ = ["demo_app"]

demo_app = typer.Typer(help="Demo data for a running stack (make run).", no_args_is_help=True)


@demo_app.command("seed")
def demo_seed(
    contacts: Annotated[int, typer.Option(min=1, max=5000, help="How many visitors.")] = 60,
    minutes: Annotated[
        float, typer.Option(min=0.1, max=120, help="Over how long (real time).")
    ] = 3.0,
    seed_number: Annotated[int, typer.Option("--seed", help="Random seed (the paths).")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Send a few minutes of visitors, leads, sales activity and email engagement through the
    accept path of the running stack; the dashboard and `revops reports` then show them."""
    current = settings()
    store = open_store(current)

    async def _run() -> SeedSummary:
        client = await connect(current)
        return await seed(
            store,
            client,
            current,
            contacts=contacts,
            minutes=minutes,
            rng_seed=seed_number,
            progress=lambda line: err.print(line, highlight=False),
        )

    emit(run_async(_run()), as_json, _print)


def _print(summary: SeedSummary) -> None:
    console.print(
        f"Seeded {summary.contacts} visitors in {summary.seconds:.0f} s: {summary.events} events, "
        f"{summary.sales_activities} sales activities, {summary.opportunities} opportunities, "
        f"{summary.recycled} recycled, {summary.opens} opens and {summary.clicks} clicks.",
        highlight=False,
    )
    console.print(
        "See them: revops reports funnel | velocity | attribution | journeys | forecast, "
        "or the dashboard at /dashboard on the gateway.",
        highlight=False,
    )
