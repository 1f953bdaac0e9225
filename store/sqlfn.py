"""SQL functions reports need that SQLite and PostgreSQL spell differently.

Reports aggregate in the database (``store/reports.py``), and a few building blocks have no
portable SQL: the seconds between two timestamps, the UTC month or day of a timestamp, and a
JSON number that must not break the query when a sender put text there. Each is one SQLAlchemy
construct compiled per dialect, so report queries are written once.

SQLite keeps timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` text in UTC (everything the store
writes is UTC); PostgreSQL keeps ``timestamptz``, read here in UTC whatever the session's zone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["day_of", "json_number", "json_text", "month_of", "seconds_between"]


class seconds_between(FunctionElement[float]):  # noqa: N801 (a SQL function's name)
    """``later - earlier`` in seconds, as a float."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


class month_of(FunctionElement[str]):  # noqa: N801
    """The UTC month of a timestamp, ``YYYY-MM``."""

    type = String()
    inherit_cache = True
    name = "month_of"


class day_of(FunctionElement[str]):  # noqa: N801
    """The UTC day of a timestamp, ``YYYY-MM-DD``."""

    type = String()
    inherit_cache = True
    name = "day_of"


class _JsonField(FunctionElement[Any]):
    """A key path into a JSON column (keys are literals of the code, never user input)."""

    inherit_cache = False

    def __init__(self, column: Any, *path: str) -> None:
        for key in path:
            if not key.replace("_", "").isalnum():
                raise ValueError(f"JSON key {key!r} must be letters, digits and underscores")
        self.path = path
        super().__init__(column)


class json_number(_JsonField):  # noqa: N801
    """A JSON value that is a number, as a float; NULL when missing or anything else."""

    type = Float()
    name = "json_number"
    inherit_cache = False  # the JSON path is not part of SQLAlchemy's cache key


class json_text(_JsonField):  # noqa: N801
    """A JSON value that is a string, as text; NULL when missing or anything else."""

    type = String()
    name = "json_text"
    inherit_cache = False


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses]


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = _args(element, compiler, **kw)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = _args(element, compiler, **kw)
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


@compiles(month_of, "sqlite")
def _month_sqlite(element: month_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m', {_args(element, compiler, **kw)[0]})"


@compiles(month_of, "postgresql")
def _month_pg(element: month_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({_args(element, compiler, **kw)[0]}) AT TIME ZONE 'UTC', 'YYYY-MM')"


@compiles(day_of, "sqlite")
def _day_sqlite(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d', {_args(element, compiler, **kw)[0]})"


@compiles(day_of, "postgresql")
def _day_pg(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({_args(element, compiler, **kw)[0]}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "'$." + ".".join(path) + "'"


def _pg_path(path: tuple[str, ...]) -> str:
    return "'{" + ",".join(path) + "}'"


@compiles(json_number, "sqlite")
def _number_sqlite(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    column, where = _args(element, compiler, **kw)[0], _sqlite_path(element.path)
    return (
        f"(CASE WHEN json_type({column}, {where}) IN ('integer', 'real') "
        f"THEN json_extract({column}, {where}) END)"
    )


@compiles(json_number, "postgresql")
def _number_pg(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    column, where = _args(element, compiler, **kw)[0], _pg_path(element.path)
    return (
        f"(CASE WHEN jsonb_typeof({column} #> {where}) = 'number' "
        f"THEN CAST({column} #>> {where} AS DOUBLE PRECISION) END)"
    )


@compiles(json_text, "sqlite")
def _text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, where = _args(element, compiler, **kw)[0], _sqlite_path(element.path)
    return (
        f"(CASE WHEN json_type({column}, {where}) = 'text' "
        f"THEN json_extract({column}, {where}) END)"
    )


@compiles(json_text, "postgresql")
def _text_pg(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, where = _args(element, compiler, **kw)[0], _pg_path(element.path)
    return f"(CASE WHEN jsonb_typeof({column} #> {where}) = 'string' THEN {column} #>> {where} END)"
