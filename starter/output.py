"""How a read command answers: a table for people, or ``--json`` for scripts, from one view.

Every read command builds one view (a pydantic model, or the plain data ``contacts show``
builds) and hands it to :func:`emit` with its renderer. With ``--json`` the view is printed as
one JSON document whose keys are the view's fields (docs/cli.md lists them); otherwise the
renderer prints it for people. Both come from the same view, so they cannot disagree, and
there is no second query path. Times are ISO 8601 with their UTC offset, durations ISO 8601
(``PT15M``); nothing else is printed on stdout with ``--json`` (progress and notes go to stderr).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from pydantic import AfterValidator
from pydantic_core import to_jsonable_python

__all__ = ["JsonFlag", "Moment", "aware", "emit", "json_text"]

V = TypeVar("V")

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead (keys: docs/cli.md).")
]
"""The ``--json`` option every read command takes."""


def aware(moment: datetime) -> datetime:
    """The store hands back naive UTC from SQLite; a JSON time must carry its offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


Moment = Annotated[datetime, AfterValidator(aware)]
"""An instant in a view: always timezone-aware (naive values are UTC)."""


def json_text(view: object) -> str:
    """The JSON document of a view (models by their fields, times ISO 8601)."""
    return json.dumps(to_jsonable_python(view), indent=2, ensure_ascii=False)


def emit(view: V, as_json: bool, render: Callable[[V], None]) -> None:
    """Print ``view`` as JSON when asked, else with the command's own renderer."""
    if as_json:
        print(json_text(view), flush=True)
        return
    render(view)
