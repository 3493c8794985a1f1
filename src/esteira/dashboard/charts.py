"""Inline SVG charts drawn on the server: a line chart (with moments marked on it), a bar
chart and a heatmap. No script and nothing fetched, so a page reads the same offline; every
mark carries a <title> that the browser shows on hover."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

SERIES_COLOURS = ("#2563eb", "#d97706", "#059669", "#7c3aed")
GRID, INK, MUTED, LIMIT = "#e5e7eb", "#1f2933", "#6b7280", "#c62828"
EVENT, GAP = "#059669", "#e2e8f0"
MOST_LABELS = 12
"""More x labels than this are thinned to every n-th, so they do not overlap."""


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: how far its figure is from its limit (1 = at the limit, above is
    worse), whether it crossed the limit, and what hovering over it says."""

    level: float
    alarm: bool
    text: str


@dataclass(frozen=True)
class Mark:
    """A moment on a line chart: `at` is an x position in labels (a fraction falls between
    two); `kind` "event" is a labelled line (a new model answering), "alarm" a red line
    (a failure), "gap" a band over the label's slot (a batch left out)."""

    at: float
    text: str
    kind: str = "event"


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    limit: float | None = None,
    width: int = 760,
    height: int = 220,
    marks: Sequence[Mark] = (),
    from_zero: bool = False,
) -> Markup:
    """One line per series over the x `labels`; None leaves a gap. `limit`: a dashed line;
    `marks`: moments drawn across the plot; `from_zero`: the y axis starts at zero (a rate,
    whose ups and downs would look larger than they are)."""
    left, right, top, bottom = 58, 40, 12, 34
    found = [v for values in series.values() for v in values if _finite(v)]
    if limit is not None:
        found.append(limit)
    if from_zero:
        found.append(0.0)
    low, high = _padded(found)
    if from_zero and low < 0 <= min(found):
        low = 0.0
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: float) -> float:
        return left + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + (high - v) / (high - low) * plot_h

    drawn = _y_axis(low, high, y, left, width - right)
    drawn += _x_labels(labels, x, height - 12)
    box = (left, top, width - right, height - bottom)
    drawn += [_moment(mark, x(mark.at), step, box) for mark in marks]
    if limit is not None:
        drawn.append(Markup(
            '<line class=limit x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="{}" '
            'stroke-dasharray="4 3"><title>limit {}</title></line>'
        ).format(left, width - right, y(limit), y(limit), LIMIT, _short(limit)))  # fmt: skip
    for n, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        for run in _unbroken(values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            drawn.append(Markup('<polyline class=series points="{}" fill=none stroke="{}" '
                                'stroke-width=2></polyline>').format(points, colour))  # fmt: skip
        for i, v in enumerate(values):
            if _finite(v):
                drawn.append(Markup(
                    '<circle class=point cx="{:.1f}" cy="{:.1f}" r=3 fill="{}">'
                    "<title>{} · {}: {}</title></circle>"
                ).format(x(i), y(v), colour, name, labels[i], _short(v)))  # fmt: skip
    legend = _legend(list(series)) if len(series) > 1 else None
    return _figure("line", title, width, height, drawn, legend)


def _moment(mark: Mark, at: float, step: float, box: tuple[float, float, float, float]
            ) -> Markup:  # fmt: skip
    """A mark across the plot `box` (left, top, right, bottom), at x `at`."""
    left, top, right, bottom = box
    if mark.kind == "gap":
        x0, x1 = max(at - step / 2, left), min(at + step / 2, right)
        return Markup(
            '<g class="mark gap"><rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}">'
            '<title>{}</title></rect><text x="{:.1f}" y="{}" font-size=10 text-anchor=middle '
            'fill="{}">{}</text></g>'
        ).format(x0, top, x1 - x0, bottom - top, GAP, mark.text, at, top + 10, MUTED,
                 mark.text)  # fmt: skip
    colour, label = (LIMIT, "") if mark.kind == "alarm" else (EVENT, mark.text)
    # the label reads rightwards from the line, or leftwards where it would leave the plot
    anchor, shift = ("end", -3) if at + 3 + len(label) * 5.5 > right else ("start", 3)
    return Markup(
        '<g class="mark {}"><line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" stroke="{}" '
        'stroke-width=1.5 stroke-dasharray="3 2"><title>{}</title></line>'
        '<text x="{:.1f}" y="{}" font-size=10 text-anchor={} fill="{}">{}</text></g>'
    ).format(mark.kind, at, at, top, bottom, colour, mark.text, at + shift, top + 10, anchor,
             colour, label)  # fmt: skip


def bar_chart(bars: Sequence[tuple[str, float]], title: str, width: int = 760,
              height: int = 200) -> Markup:  # fmt: skip
    """One bar per (label, value), from zero."""
    left, right, top, bottom = 58, 16, 12, 34
    most_wide = 64
    high = max([v for _, v in bars if _finite(v)] + [0.0]) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(bars), 1)

    def y(v: float) -> float:
        return top + (high - v) / high * plot_h

    marks = _y_axis(0.0, high, y, left, width - right)
    marks += _x_labels([label for label, _ in bars], lambda i: left + (i + 0.5) * slot,
                       height - 12)  # fmt: skip
    for i, (label, value) in enumerate(bars):
        shown = value if _finite(value) else 0.0
        wide = min(slot * 0.8, most_wide)
        marks.append(Markup(
            '<rect class=bar x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
            "<title>{}: {}</title></rect>"
        ).format(left + (i + 0.5) * slot - wide / 2, y(shown), wide, y(0) - y(shown),
                 SERIES_COLOURS[0], label, _short(value)))  # fmt: skip
    return _figure("bar", title, width, height, marks)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Mapping[tuple[str, str], Cell],
    title: str,
) -> Markup:
    """A grid of `rows` by `columns`, one rect per pair; a pair without a cell is drawn
    blank ("not measured")."""
    label_w, size = 130, 22
    cell_w = max(size, min(56, (760 - label_w) // max(len(columns), 1)))
    # Column labels lean up and right at 45°, ~4.4 px a letter each way: room above the
    # grid for the longest, and right of it for the last.
    head_h = max(64, round(max((len(c) for c in columns), default=0) * 4.4) + 12)
    lean = max(0.0, len(columns[-1]) * 4.4 - cell_w / 2) if columns else 0.0
    width = label_w + cell_w * len(columns) + 8 + lean
    height = head_h + size * len(rows) + 4
    marks = []
    for j, column in enumerate(columns):
        cx = label_w + j * cell_w + cell_w / 2
        marks.append(Markup(
            '<text x="{:.1f}" y="{}" font-size=11 fill="{}" transform="rotate(-45 {:.1f} {})">'
            "{}</text>"
        ).format(cx, head_h - 6, INK, cx, head_h - 6, column))  # fmt: skip
    for i, row in enumerate(rows):
        top = head_h + i * size
        marks.append(Markup('<text x="{}" y="{}" font-size=12 text-anchor=end fill="{}">{}</text>')
                     .format(label_w - 6, top + size * 0.7, INK, row))  # fmt: skip
        for j, column in enumerate(columns):
            cell = cells.get((row, column))
            fill = heat(cell) if cell else "#ffffff"
            told = cell.text if cell else "not measured"
            marks.append(Markup(
                '<rect class="cell{}" x="{}" y="{}" width="{}" height="{}" fill="{}" '
                'stroke="{}"><title>{} · {}: {}</title></rect>'
            ).format(" alarm" if cell and cell.alarm else "", label_w + j * cell_w, top,
                     cell_w - 2, size - 2, fill, GRID, row, column, told))  # fmt: skip
    return _figure("heatmap", title, width, height, marks)


def heat(cell: Cell) -> str:
    """Pale to amber below the limit, light to deep red past it (three times the limit
    and beyond: the deepest)."""
    if not cell.alarm:
        return _blend((0xF1, 0xF5, 0xF9), (0xFC, 0xD3, 0x4D), min(max(cell.level, 0.0), 1.0))
    return _blend((0xF8, 0x71, 0x71), (0x99, 0x1B, 0x1B), min(max(cell.level - 1, 0.0) / 2, 1.0))


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))


def _figure(kind: str, title: str, width: float, height: float, marks: list[Markup],
            legend: Markup | None = None) -> Markup:  # fmt: skip
    return Markup(
        '<figure class=chart><figcaption>{}</figcaption><svg class="chart {}" role=img '
        'aria-label="{}" width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}" '
        'xmlns="http://www.w3.org/2000/svg">{}</svg>{}</figure>'
    ).format(title, kind, title, width, height, width, height, Markup("").join(marks),
             legend or "")  # fmt: skip


def _legend(names: list[str]) -> Markup:
    keys = Markup("").join(
        Markup('<span class=key><i style="background:{}"></i>{}</span>').format(
            SERIES_COLOURS[n % len(SERIES_COLOURS)], name
        )
        for n, name in enumerate(names)
    )
    return Markup("<div class=legend>{}</div>").format(keys)


def _y_axis(
    low: float, high: float, y: Callable[[float], float], x0: float, x1: float
) -> list[Markup]:
    """Five grid lines with their values."""
    marks = []
    for k in range(5):
        v = low + (high - low) * k / 4
        marks.append(Markup(
            '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="{}"></line>'
            '<text x="{}" y="{:.1f}" font-size=10 text-anchor=end fill="{}">{}</text>'
        ).format(x0, x1, y(v), y(v), GRID, x0 - 6, y(v) + 3, MUTED, _short(v)))  # fmt: skip
    return marks


def _x_labels(
    labels: Sequence[str], x: Callable[[int], float], baseline: float
) -> list[Markup]:
    every = math.ceil(len(labels) / MOST_LABELS) or 1
    return [
        Markup('<text x="{:.1f}" y="{}" font-size=10 text-anchor=middle fill="{}">{}</text>')
        .format(x(i), baseline, MUTED, label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]  # fmt: skip


def _padded(values: list[float]) -> tuple[float, float]:
    """The y range: the values' with a tenth of their span either side."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    span = (high - low) or abs(high) * 0.1 or 1.0
    return low - span * 0.1, high + span * 0.1


def _unbroken(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The runs of consecutive finite values (a gap breaks the line)."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if _finite(v):
            runs[-1].append((i, float(v)))  # type: ignore[arg-type]
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if len(r) > 1]


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _short(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"

