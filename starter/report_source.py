"""How a ``revops reports`` command gets its report book: store, definition, checked options.

The attribution definition comes from the definitions service (deployed version first,
``config/attribution.yaml`` otherwise). A model the definition does not have, or a segment
that is no list, is a bad argument (exit 2, nothing on stdout), caught before any query runs.
"""

from __future__ import annotations

from definitions import ATTRIBUTION, LISTS, Definitions
from revops.errors import ConfigError
from revops.settings import Settings
from starter.common import fail, open_store
from store.reports import ReportBook

__all__ = ["open_reports"]


def open_reports(current: Settings, segment: str | None, model: str | None = None) -> ReportBook:
    """The report book for a command (summaries brought current), or exit 2 naming what is
    wrong with the model, the segment or the definition."""
    store = open_store(current)
    definitions = Definitions.of(store, current)
    try:
        book = ReportBook(store, definitions.get(ATTRIBUTION))
        names = {item.name for item in definitions.get(LISTS).lists}
    except ConfigError as exc:
        fail(str(exc), 2)
    models = book.definition.models
    if model is not None and model not in models:
        fail(f"--model: no model {model!r} (models: {', '.join(models)})", 2)
    if segment and segment not in names | set(book.definition.segments):
        segments = ", ".join(book.definition.segments)
        fail(f"--segment: no list {segment!r} (segments: {segments})", 2)
    book.refresh()
    return book
