"""The dashboard's charts as SVG drawn on the server: no script, no CDN, nothing to download.

Four shapes cover every chart: horizontal bars (the funnel, SLA attainment with its target),
grouped bars (pipeline and revenue per channel; sends, opens and clicks per journey), stacked
bars (time-in-stage distribution) and lines (list sizes over time). Each returns one ``<svg>``
with ``data-chart`` (its name) and ``data-points`` (how many values it drew), a ``<title>`` on
every mark for the browser's tooltip, and an ``aria-label``. All text is escaped here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["PALETTE", "Bar", "Series", "bars", "grouped_bars", "line_chart", "stacked_bars"]

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
_WIDTH = 640
_LABEL = 170
_ROW = 26
Format = Callable[[float], str]


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value, and the text written after it."""

    label: str
    value: float
    caption: str = ""


@dataclass(frozen=True)
class Series:
    """One named series of values (one per category, or per x position)."""

    name: str
    values: Sequence[float]


def _text(x: float, y: float, text: str, *, anchor: str = "start", css: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{css}">{escape(text)}</text>'
    )


def _svg(name: str, label: str, height: float, points: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height:.0f}" '
        f'role="img" aria-label="{escape(label)}" data-chart="{escape(name)}" '
        f'data-points="{points}" class="chart-svg">'
    )
    if points == 0:
        body = [_text(_WIDTH / 2, height / 2, "no data for this period", anchor="middle")]
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text escaped above


def _legend(series: Sequence[str], y: float) -> list[str]:
    marks, x = [], float(_LABEL)
    for index, name in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        marks.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        marks.append(_text(x + 14, y, name, css="legend"))
        x += 24 + 7 * len(name)
    return marks


def _scale(peak: float) -> float:
    return (_WIDTH - _LABEL - 90) / peak if peak > 0 else 0.0


def bars(
    name: str,
    label: str,
    rows: Sequence[Bar],
    *,
    target: float | None = None,
    colour: str = PALETTE[0],
) -> Markup:
    """Horizontal bars, one per row; ``target`` draws a dashed line at that value."""
    peak = max([row.value for row in rows] + [target or 0.0], default=0.0)
    scale = _scale(peak)
    height = 16 + _ROW * max(len(rows), 1)
    body = []
    for index, row in enumerate(rows):
        y = 8 + index * _ROW
        width = max(row.value * scale, 1.0 if row.value > 0 else 0.0)
        body.append(_text(_LABEL - 8, y + 15, row.label, anchor="end", css="label"))
        body.append(
            f'<rect class="bar" x="{_LABEL}" y="{y + 3}" width="{width:.1f}" height="{_ROW - 8}"'
            f' fill="{colour}" data-value="{row.value:g}"><title>{escape(row.label)}: '
            f"{escape(row.caption or f'{row.value:g}')}</title></rect>"
        )
        body.append(_text(_LABEL + width + 6, y + 15, row.caption, css="value"))
    if target is not None and rows:
        x = _LABEL + target * scale
        body.append(
            f'<line class="target" x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{height - 4}" '
            f'stroke="#111827" stroke-dasharray="4 3"><title>target {target:g}</title></line>'
        )
    return _svg(name, label, height, len(rows), body)


def grouped_bars(
    name: str,
    label: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Format,
) -> Markup:
    """For each category, one thin bar per series, with a legend."""
    peak = max((v for s in series for v in s.values), default=0.0)
    scale = _scale(peak)
    thick = 9
    block = thick * len(series) + 10
    height = 30 + block * max(len(categories), 1)
    body = _legend([s.name for s in series], 16)
    points = 0
    for index, category in enumerate(categories):
        top = 26 + index * block
        body.append(_text(_LABEL - 8, top + block / 2 + 2, category, anchor="end", css="label"))
        for number, one in enumerate(series):
            value = one.values[index]
            points += 1 if value else 0
            width = value * scale
            y = top + number * thick
            body.append(
                f'<rect class="bar" x="{_LABEL}" y="{y}" width="{width:.1f}" '
                f'height="{thick - 1}" fill="{PALETTE[number % len(PALETTE)]}" '
                f'data-value="{value:g}"><title>{escape(category)}, {escape(one.name)}: '
                f"{escape(fmt(value))}</title></rect>"
            )
            if value:
                body.append(_text(_LABEL + width + 4, y + thick - 1, fmt(value), css="small"))
    return _svg(name, label, height, points, body)


def stacked_bars(
    name: str, label: str, rows: Sequence[tuple[str, Sequence[float]]], parts: Sequence[str]
) -> Markup:
    """Each row split into ``parts`` by share (every row full width), with a legend."""
    span = _WIDTH - _LABEL - 20
    height = 30 + _ROW * max(len(rows), 1)
    body = _legend(parts, 16)
    points = 0
    for index, (row_label, values) in enumerate(rows):
        y = 26 + index * _ROW
        total = sum(values)
        body.append(_text(_LABEL - 8, y + 14, row_label, anchor="end", css="label"))
        x = float(_LABEL)
        for number, value in enumerate(values):
            if total <= 0 or value <= 0:
                continue
            points += 1
            width = span * value / total
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y + 2}" width="{width:.1f}" '
                f'height="{_ROW - 8}" fill="{PALETTE[number % len(PALETTE)]}" '
                f'data-value="{value:g}"><title>{escape(row_label)}, {escape(parts[number])}: '
                f"{value:g} ({value / total:.0%})</title></rect>"
            )
            x += width
    return _svg(name, label, height, points, body)


def line_chart(name: str, label: str, x_labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series over ``x_labels`` (first and last labelled), with a legend."""
    height = 230
    left, right, top, bottom = 60.0, _WIDTH - 20.0, 30.0, height - 30.0
    peak = max((v for s in series for v in s.values), default=0.0) or 1.0
    steps = max(len(x_labels) - 1, 1)
    body = _legend([s.name for s in series], 16)
    body.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#9ca3af"/>'
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#9ca3af"/>'
    )
    body.append(_text(left - 6, top + 4, f"{peak:g}", anchor="end", css="small"))
    body.append(_text(left - 6, bottom, "0", anchor="end", css="small"))
    if x_labels:
        body.append(_text(left, bottom + 16, x_labels[0], css="small"))
        body.append(_text(right, bottom + 16, x_labels[-1], anchor="end", css="small"))
    points = 0
    for number, one in enumerate(series):
        coords = [
            (left + (right - left) * i / steps, bottom - (bottom - top) * v / peak)
            for i, v in enumerate(one.values)
        ]
        points += len(coords)
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        colour = PALETTE[number % len(PALETTE)]
        body.append(
            f'<polyline class="line" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(one.name)}: {one.values[-1]:g} now'
            f"</title></polyline>"
        )
    return _svg(name, label, height, points, body)
