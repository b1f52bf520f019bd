"""Bar charts drawn on the server as SVG: no script, no other host, readable without colour.

A hidden figure ("<5" or "x") gets no bar at all, only its mark, so the length of a bar can never
give a suppressed count away. Every chart has a <title> and a <desc>, and the page shows the same
numbers as a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flask_babel import gettext as _
from markupsafe import Markup, escape

from kyffikus.services.statistics import Cell, format_cell

ROW = 22
LABEL_WIDTH = 210
VALUE_WIDTH = 56
WIDTH = 640
TOP = 24
BOTTOM = 8


def nice_scale(maximum: float, steps: int = 4) -> tuple[float, float]:
    """A round upper end for the axis and the step between grid lines (1, 2 or 5 times 10^n)."""
    if maximum <= 0:
        return 1.0, 1.0
    raw = maximum / steps
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        step = factor * power
        if step >= raw:
            break
    step = max(step, 1.0)
    return step * math.ceil(maximum / step), step


def shorten(text: str, limit: int) -> str:
    """The text cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ticks(top: float, step: float) -> list[float]:
    count = int(round(top / step))
    return [i * step for i in range(count + 1)]


def _number(value: float) -> str:
    return format_cell(Cell(int(value)))


def bar_chart(chart_id: str, title: str, bars: Sequence[tuple[str, Cell]]) -> Markup:
    """A horizontal bar chart: one labelled bar per row, the figure at its end."""
    values = [c.number or 0.0 for _label, c in bars]
    top, step = nice_scale(max(values, default=0.0))
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = TOP + ROW * max(len(bars), 1) + BOTTOM
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-labelledby="{title_id} {desc_id}" id="{escape(chart_id)}">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(_desc(bars))}</desc>',
    ]
    for tick in _ticks(top, step):
        x = LABEL_WIDTH + plot * tick / top
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height - BOTTOM}"/>'
            f'<text x="{x:.1f}" y="{TOP - 8}" text-anchor="middle">{escape(_number(tick))}</text>'
        )
    for i, (label, cell) in enumerate(bars):
        y = TOP + i * ROW
        shown = format_cell(cell)
        parts.append("<g>")
        parts.append(f"<title>{escape(label)}: {escape(shown)}</title>")
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + ROW * 0.68:.1f}" text-anchor="end">'
            f"{escape(shorten(label, 30))}</text>"
        )
        width = 0.0
        if cell.number is not None and cell.number > 0:
            width = max(plot * cell.number / top, 1.5)
            parts.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}"/>'
            )
        parts.append(
            f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + ROW * 0.68:.1f}">{escape(shown)}</text>'
        )
        parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="{LABEL_WIDTH}" y1="{TOP - 4}" x2="{LABEL_WIDTH}" y2="{height - BOTTOM}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text part above is escaped


def column_chart(chart_id: str, title: str, bars: Sequence[tuple[str, Cell]]) -> Markup:
    """A vertical column chart (months): labels under the columns, figures above them."""
    values = [c.number or 0.0 for _label, c in bars]
    top, step = nice_scale(max(values, default=0.0))
    left, right, head, foot = 48, 8, 24, 28
    height = 260
    plot_w = WIDTH - left - right
    plot_h = height - head - foot
    slot = plot_w / max(len(bars), 1)
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-labelledby="{title_id} {desc_id}" id="{escape(chart_id)}">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(_desc(bars))}</desc>',
    ]
    for tick in _ticks(top, step):
        y = head + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_number(tick))}</text>'
        )
    for i, (label, cell) in enumerate(bars):
        x = left + i * slot
        shown = format_cell(cell)
        parts.append("<g>")
        parts.append(f"<title>{escape(label)}: {escape(shown)}</title>")
        bar_h = 0.0
        if cell.number is not None and cell.number > 0:
            bar_h = max(plot_h * cell.number / top, 1.5)
            parts.append(
                f'<rect class="bar" x="{x + slot * 0.15:.1f}" y="{head + plot_h - bar_h:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{bar_h:.1f}"/>'
            )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{head + plot_h - bar_h - 4:.1f}" text-anchor="middle">'
            f"{escape(shown)}</text>"
        )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - foot + 16}" text-anchor="middle">'
            f"{escape(label[:3] if len(bars) > 8 else shorten(label, 12))}</text>"
        )
        parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="{left}" y1="{head + plot_h}" x2="{WIDTH - right}" y2="{head + plot_h}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text part above is escaped


def _desc(bars: Sequence[tuple[str, Cell]]) -> str:
    if not bars:
        return _("Keine Daten.")
    return _(
        "Balkendiagramm mit %(count)s Werten; die Zahlen stehen auch in der Tabelle daneben. "
        "Werte unter 5 sind zum Schutz der Familien als „<5“ angegeben und ohne Balken.",
        count=len(bars),
    )
