"""The monitoring report: one self-contained HTML page (inline SVG, no script, readable
offline) that shows at a glance what drifted, how far, which test decided it, how the
model's metric went over time, and each feature's distribution, reference against current."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esteira.monitoring.drift import counted, severity
from esteira.monitoring.monitor import PREDICTION
from esteira.monitoring.performance import MONITORED, key_metric, record_task

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import pandas as pd

    from esteira.metadata import MonitoringRecord
    from esteira.summaries.profile import ColumnProfile, Profile

REF, CUR, BAD, OK, INK, GRID = "#8da0cb", "#fc8d62", "#d7301f", "#1a9850", "#222", "#ddd"

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;color:#222;margin:24px auto;
max-width:1100px;padding:0 16px}h1{font-size:22px;margin:0}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:22px}.bad{color:#d7301f}.ok{color:#1a9850}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #eee;
text-align:left}th{font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fill,
minmax(250px,1fr));gap:10px}.cell{border:1px solid #eee;border-radius:6px;padding:6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def current_counts(
    reference: Profile, data: pd.DataFrame, predictions: pd.Series
) -> dict[str, np.ndarray]:
    """What the report draws of the current data: each model input's and the predictions'
    counts in the reference's bins."""
    columns = {**{c: data[c] for c in data.columns}, PREDICTION: predictions}
    return {
        column: reference.columns[column].bin_counts(values.dropna())
        for column, values in columns.items()
        if column in reference.columns
    }


def render(
    record: MonitoringRecord,
    reference: Profile,
    current: Mapping[str, np.ndarray],
    history: list[MonitoringRecord],
    metric: str,
) -> str:
    """The page; `current`: the monitored data's counts in the reference's bins, per column
    (`current_counts`, or the tallies of data streamed or counted by Spark)."""
    metric = key_metric(metric, record)  # `[ct] metric`, else the task's default
    features = {c: d for c, d in record.drifted.items() if d.get("kind") != "prediction"}
    drifted = [c for c, d in features.items() if d["drifted"] and counted(d)]
    prediction = record.drifted.get(PREDICTION)
    cards = [
        ("rows", f"{record.rows:,}", ""),
        (
            "features drifted",
            f"{len(drifted)} of {sum(map(counted, features.values()))} ({record.drift_share:.0%})",
            "bad" if record.drift_share >= 0.5 else "ok",
        ),
        (
            "prediction drift",
            _verdict(prediction),
            "bad" if prediction and prediction["drifted"] else "ok",
        ),
    ]
    cards += _metric_cards(record, metric)
    parts = [
        f"<h1>Monitoring: {_e(record.model)} v{_e(record.version)}</h1>",
        f"<div class=sub>batch {_e(record.batch)} · generated "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · reference: the model's training data "
        f"({reference.rows:,} rows)</div>",
        "<div class=cards>"
        + "".join(f"<div class='card {cls}'>{_e(k)}<b>{_e(v)}</b></div>" for k, v, cls in cards)
        + "</div>",
        "<h2>Drift by column</h2>",
        "<div class=sub>bar: the test's figure against its limit (1 = at the limit); red: drifted."
        " Distances decide with a large reference, p-value tests with a small one; not counted:"
        " [monitoring] ignore_columns, left out of the drift share.</div>",
        _drift_bars(record.drifted),
        _table(record.drifted),
    ]
    points = [(h.batch, h.metrics[metric]) for h in history if metric in h.metrics]
    if len(points) > 1:
        parts += [f"<h2>{_e(metric)} over time</h2>", _line(points)]
    elif points:
        parts.append(
            f"<h2>{_e(metric)} over time</h2><div class=sub>one labelled record so far;"
            " the chart starts with the second</div>"
        )
    segments = record.metrics.get("segments") or {}
    if segments:
        shown = [m for m in MONITORED[record_task(record)].segment_metrics if m != metric]
        parts.append(
            "<h2>By segment</h2><table><tr><th>segment</th><th>rows</th>"
            f"<th>{_e(metric)}</th>" + "".join(f"<th>{_e(m)}</th>" for m in shown) + "</tr>"
        )
        for seg, m in sorted(segments.items()):
            parts.append(
                f"<tr><td>{_e(seg)}</td><td>{m.get('rows', 0):,}</td>"
                f"<td>{m.get(metric, float('nan')):.4f}</td>"
                + "".join(f"<td>{m.get(name, float('nan')):.3f}</td>" for name in shown)
                + "</tr>"
            )
        parts.append("</table>")
    parts += _classes(record.metrics) + _residuals(record.metrics)
    parts += [
        "<h2>Distributions</h2><div class='sub legend'>share of rows per reference bin:"
        f"<span style='background:{REF}'></span>reference<span style='background:{CUR}'></span>"
        "current</div><div class=grid>",
    ]
    for column in [*features, PREDICTION]:
        if column in current and column in reference.columns:
            found = record.drifted.get(column)
            parts.append(_distribution(column, reference.columns[column], current[column], found))
    parts.append("</div>")
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Monitoring "
        f"{_e(record.model)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _metric_cards(record: MonitoringRecord, metric: str) -> list[tuple[str, str, str]]:
    """The key metric, the task's other metrics (a binary model's calibration instead)."""
    found = record.metrics
    cards = [(metric, f"{found[metric]:.4f}", "")] if metric in found else []
    if "calibration_gap" in found:
        return [*cards, ("mean prediction − rate", f"{found['calibration_gap']:+.3f}", "")]
    others = [m for m in MONITORED[record_task(record)].metrics if m != metric and m in found]
    return cards + [(m, f"{found[m]:.4g}", "") for m in others]


def _classes(found: dict[str, Any]) -> list[str]:
    """A multiclass model's recall per class and confusion matrix (rows: the true class)."""
    matrix = found.get("confusion_matrix")
    if not matrix:
        return []
    classes, recall = matrix["classes"], found.get("recall_per_class", {})
    head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    rows = "".join(
        f"<tr><th>{_e(c)}</th>" + "".join(f"<td>{n:,}</td>" for n in counts)
        + f"<td>{recall.get(c, float('nan')):.3f}</td></tr>"
        for c, counts in zip(classes, matrix["counts"], strict=True)
    )  # fmt: skip
    return [
        "<h2>Classes</h2><div class=sub>rows: the true class; columns: the predicted class;"
        " recall: the share of a class's rows predicted as that class</div>",
        f"<table><tr><th>true ↓ predicted →</th>{head}<th>recall</th></tr>{rows}</table>",
    ]


def _residuals(found: dict[str, Any]) -> list[str]:
    """A regression model's residuals (label − prediction): quantiles and histogram."""
    histogram = found.get("residual_histogram")
    if not histogram:
        return []
    quantiles = found.get("residual_quantiles", {})
    listed = " · ".join(f"{_e(q)} {v:.4g}" for q, v in quantiles.items())
    edges, counts = histogram["edges"], histogram["counts"]
    width, height, pad = 760, 140, 18
    step, top = (width - 8) / max(len(counts), 1), max(counts) or 1
    svg = [f"<svg width={width} height={height + pad} role=img>"]
    for i, n in enumerate(counts):
        h = n / top * (height - 10)
        low, high = edges[i], edges[i + 1]
        color = INK if low <= 0 < high else REF
        svg.append(
            f"<rect x={4 + i * step:.1f} y={height - h:.1f} width={step * 0.9:.1f} "
            f"height={h:.1f} fill={color}><title>{low:.4g} to {high:.4g}: {n:,} rows"
            f"</title></rect>"
        )
    for i in (0, len(counts) // 2, len(counts)):
        svg.append(
            f"<text x={4 + i * step:.1f} y={height + 14} font-size=10 text-anchor=middle>"
            f"{_short(edges[i])}</text>"
        )
    svg.append(f"<line x1=0 x2={width} y1={height} y2={height} stroke={GRID}></line></svg>")
    return [
        "<h2>Residuals</h2><div class=sub>label − prediction (positive: the model predicts too"
        f" low), central 98% of rows; dark: the bar around zero. {listed}</div>",
        "".join(svg),
    ]


def _verdict(found: dict[str, Any] | None) -> str:
    if not found:
        return "n/a"
    return f"{'drifted' if found['drifted'] else 'stable'} ({found['test']} {found['value']:.3g})"


def _not_counted(found: dict[str, Any]) -> str:
    return "" if found.get("counted", True) else " · not counted"


def _drift_bars(drifted: dict[str, Any]) -> str:
    rows = sorted(drifted.items(), key=lambda kv: -severity(kv[1]))
    width, label, row = 760, 130, 20
    cap = max(3.0, min(max((severity(d) for _, d in rows), default=1), 10))  # longer: clipped
    svg = [f"<svg width={width} height={row * len(rows) + 24} role=img>"]
    scale = (width - label - 90) / cap
    x1 = label + scale
    for i, (column, d) in enumerate(rows):
        y = i * row + 4
        bar = min(severity(d), cap) * scale
        color = BAD if d["drifted"] else OK
        svg.append(
            f"<text x={label - 6} y={y + 13} text-anchor=end font-size=12>{_e(column)}</text>"
            f"<rect x={label} y={y} width={bar:.1f} height={row - 6} fill={color}></rect>"
            f"<text x={label + bar + 4:.1f} y={y + 13} font-size=11 fill=#555>"
            f"{d['test']} {d['value']:.3g}{_not_counted(d)}</text>"
        )
    svg.append(
        f"<line x1={x1:.1f} x2={x1:.1f} y1=0 y2={row * len(rows) + 4} stroke={INK} "
        f"stroke-dasharray=3></line><text x={x1 + 3:.1f} y={row * len(rows) + 18} "
        f"font-size=11>limit</text></svg>"
    )
    return "".join(svg)


def _table(drifted: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(c)}</td><td>{d['test']}</td><td>{d['value']:.4g}</td>"
        f"<td>{d['threshold']}</td><td>{d['psi']:.3f}</td>"
        f"<td class={'bad' if d['drifted'] else 'ok'}>{'drifted' if d['drifted'] else 'stable'}"
        f"{_not_counted(d)}</td></tr>"
        for c, d in drifted.items()
    )
    return (
        "<table><tr><th>column</th><th>test that decided</th><th>figure</th><th>limit</th>"
        f"<th>PSI</th><th>verdict</th></tr>{rows}</table>"
    )


def _distribution(column: str, ref: ColumnProfile, current: np.ndarray, found: Any) -> str:
    total_ref, total_cur = max(sum(ref.counts), 1), max(int(current.sum()), 1)
    shares = [(r / total_ref, c / total_cur) for r, c in zip(ref.counts, current, strict=True)]
    if ref.kind == "numeric":
        labels = ["≤" + _short(ref.edges[0])] + [f">{_short(e)}" for e in ref.edges]
    else:
        labels = [*ref.categories, "other"]
        keep = sorted(range(len(shares)), key=lambda i: -(shares[i][0] + shares[i][1]))[:8]
        shares, labels = [shares[i] for i in keep], [labels[i] for i in keep]
    width, height, pad = 240, 120, 18
    step = (width - 8) / max(len(shares), 1)
    top = max(max(a, b) for a, b in shares) or 1
    svg = [f"<svg width={width} height={height + pad} role=img>"]
    for i, (a, b) in enumerate(shares):
        x = 4 + i * step
        for j, (share, color) in enumerate(((a, REF), (b, CUR))):
            h = share / top * (height - 10)
            svg.append(
                f"<rect x={x + j * step / 2.4:.1f} y={height - h:.1f} "
                f"width={step / 2.6:.1f} height={h:.1f} fill={color}>"
                f"<title>{_e(labels[i])}: {share:.1%}</title></rect>"
            )
    svg.append(f"<line x1=0 x2={width} y1={height} y2={height} stroke={GRID}></line></svg>")
    verdict = _verdict(found) if found else ""
    title = f"<b>{_e(column)}</b> <span class=sub>{_e(verdict)}</span>"
    return f"<div class=cell>{title}<br>{''.join(svg)}</div>"


def _line(points: list[tuple[str, float]]) -> str:
    width, height, left, bottom = 760, 180, 50, 30
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 0.01
    low, high = low - span * 0.1, high + span * 0.1
    step = (width - left - 20) / max(len(points) - 1, 1)

    def y(v: float) -> float:
        return 10 + (high - v) / (high - low) * (height - bottom - 10)

    coords = [(left + i * step, y(v)) for i, (_, v) in enumerate(points)]
    path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
    svg = [
        f"<svg width={width} height={height} role=img>",
        f"<polyline points='{path}' fill=none stroke={REF} stroke-width=2></polyline>",
    ]
    for (x, yy), (label, v) in zip(coords, points, strict=True):
        svg.append(
            f"<circle cx={x:.1f} cy={yy:.1f} r=3 fill={REF}><title>{_e(label)}: {v:.4f}"
            f"</title></circle><text x={x:.1f} y={height - 10} font-size=10 "
            f"text-anchor=middle>{_e(label)}</text>"
        )
    for v in (low + (high - low) * k / 4 for k in range(5)):
        svg.append(
            f"<text x={left - 6} y={y(v) + 4:.1f} font-size=10 text-anchor=end>{v:.4f}</text>"
            f"<line x1={left} x2={width - 10} y1={y(v):.1f} y2={y(v):.1f} stroke={GRID}></line>"
        )
    svg.append("</svg>")
    return "".join(svg)


def _short(value: float) -> str:
    return f"{value:.3g}"


def _e(text: Any) -> str:
    return html.escape(str(text))
