"""What a table's earlier batches say about a new one: the reference profile of the recent
batches, and per-batch figures over the whole history.

The recent batches (`[validation] reference_batches`) give the profile the usual checks
compare with. The whole history gives what a batch may look like at all: the range of
every earlier batch's mean, spread and share of negative values, how far a mean ever moved
from one batch to the next, which date-time columns stay inside their batch's period, and
the label's class shares. A month after a gap (July landing after March) is then judged by
how far history lets a column move in four months, not by the three months before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from esteira.batches import BatchLabelError, period_of
from esteira.summaries.profile import Profile, column_kind, infer_profile
from esteira.validation.labels import label_bins, predictive_power

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class ColumnHistory:
    """Per-batch figures of one number column, oldest batch first."""

    means: list[float]
    spreads: list[float]
    """Mean absolute deviation from the median: a spread one wild value cannot inflate."""
    negative_shares: list[float]
    drift: float = 0.0
    """The most the mean moved from one batch to the next, per batch period."""
    spread_drift: float = 0.0
    """The most the spread moved from one batch to the next, per batch period, as a
    factor's logarithm (0.1: by 10%); 0 when a spread was 0."""


@dataclass
class BatchHistory:
    rows: list[int]
    """Rows of each reference batch."""
    duplicate_rate: float | None = None
    """Share of fully duplicated rows in a reference batch (their mean)."""
    gap: int = 1
    """Batch periods from the newest earlier batch to this one (1: the next)."""
    period: tuple[datetime, datetime] | None = None
    """Where the new batch's period starts and ends, when its label is a period."""
    outside_period: dict[str, float] = field(default_factory=dict)
    """Date-time column: share of earlier values outside their own batch's period."""
    numbers: dict[str, ColumnHistory] = field(default_factory=dict)
    label: str | None = None
    label_shares: dict[str, list[float]] = field(default_factory=dict)
    """Class of a label of classes: its share in each earlier batch."""
    label_drift: float = 0.0
    label_power: dict[str, float] = field(default_factory=dict)
    """Column: how well it predicted the label in the reference rows."""

    @classmethod
    def of_profile(cls, reference: Profile) -> BatchHistory:
        """What a lone profile tells (a reference given by hand): one batch, its figures."""
        numbers = {
            name: ColumnHistory([col.mean], [_quantile_spread(col.quantiles)],
                                [_quantile_negatives(col.quantiles)])
            for name, col in reference.columns.items()
            if col.kind == "numeric" and col.mean is not None
        }  # fmt: skip
        return cls([reference.rows], numbers=numbers)


def reference_of(
    earlier: pd.DataFrame,
    batch_column: str,
    batch: Any,
    recent: int,
    period_kind: str | None = None,
    label: str | None = None,
) -> tuple[Profile, BatchHistory] | None:
    """The profile of the last `recent` batches in `earlier` (rows of the batches before
    `batch`, with their `batch_column`) and the history of all of them; None without any."""
    if earlier.empty:
        return None
    labels = list(earlier[batch_column].unique())
    try:
        period = period_of([*labels, batch], period_kind)
        order = sorted(labels, key=period.index)
        positions = [period.index(b) for b in order]
        gap = period.index(batch) - positions[-1]
        span = (period.start(batch), period.end(batch))
    except BatchLabelError:  # free-text labels: their own order, no periods
        period, order, gap, span = None, sorted(labels), 1, None
        positions = list(range(len(order)))
    groups = dict(tuple(earlier.groupby(batch_column, sort=False)))
    batches = [groups[b].drop(columns=[batch_column]) for b in order]
    reference_rows = batches[-recent:]
    rows = earlier[earlier[batch_column].isin(order[-recent:])].drop(columns=[batch_column])
    duplicates = [_duplicate_rate(b) for b in reference_rows]
    history = BatchHistory(
        [len(b) for b in reference_rows],
        None if None in duplicates else sum(duplicates) / len(duplicates),  # type: ignore[arg-type]
        gap,
        span,
        numbers=_numbers(batches, positions),
    )
    if period is not None:
        history.outside_period = _outside_period(batches, order, period)
    if label is not None and label in rows:
        _add_label(history, label, rows, batches, positions)
    return infer_profile(rows), history


def whole_table(rows: pd.DataFrame, label: str | None = None) -> tuple[Profile, BatchHistory]:
    """The reference of a table replaced whole (a register): the rows it replaces, one batch."""
    history = BatchHistory([len(rows)], _duplicate_rate(rows), numbers=_numbers([rows], [0]))
    if label is not None and label in rows:
        _add_label(history, label, rows, [rows], [0])
    return infer_profile(rows), history


def _numbers(batches: list[pd.DataFrame], positions: list[int]) -> dict[str, ColumnHistory]:
    out = {}
    for name in batches[-1].columns:
        if column_kind(batches[-1][name]) != "numeric":
            continue
        figures = [_figures(b[name]) for b in batches if name in b]
        figures = [f for f in figures if f is not None]
        if not figures:
            continue
        means, spreads, negatives = (list(x) for x in zip(*figures, strict=True))
        factors = [math.log(s) for s in spreads] if min(spreads) > 0 else []
        out[name] = ColumnHistory(means, spreads, negatives, _drift(means, positions),
                                  _drift(factors, positions))  # fmt: skip
    return out


def _figures(values: pd.Series) -> tuple[float, float, float] | None:
    data = values.dropna().to_numpy(dtype=float)
    if data.size == 0:
        return None
    return float(data.mean()), spread_of(data), float((data < 0).mean())


def spread_of(data: np.ndarray) -> float:
    """Mean absolute deviation from the median: a spread one wild value cannot inflate."""
    import numpy as np

    return float(np.abs(data - np.median(data)).mean())


def _drift(values: list[float], positions: list[int]) -> float:
    """The largest move between consecutive values, per period between them."""
    steps = [
        abs(b - a) / max(q - p, 1)
        for a, b, p, q in zip(values, values[1:], positions, positions[1:], strict=False)
    ]
    return max(steps, default=0.0)


def _duplicate_rate(rows: pd.DataFrame) -> float | None:
    if rows.empty:
        return 0.0
    try:
        return float(rows.duplicated().mean())
    except TypeError:  # unhashable cells (lists, dicts): not counted
        return None


def _outside_period(batches: list[pd.DataFrame], order: list[Any], period: Any) -> dict:
    out = {}
    for name in batches[-1].columns:
        if column_kind(batches[-1][name]) != "datetime":
            continue
        outside = [
            outside_share(b[name], (period.start(label), period.end(label)))
            for b, label in zip(batches, order, strict=True)
            if name in b
        ]
        outside = [s for s in outside if s is not None]
        if outside:
            out[name] = max(outside)
    return out


def outside_share(values: pd.Series, span: tuple[datetime, datetime]) -> float | None:
    """The share of `values` (date-times; aware ones compared in UTC) outside `span`."""
    import pandas as pd

    present = values.dropna()
    if present.empty:
        return None
    times = pd.DatetimeIndex(present)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    start, end = pd.Timestamp(span[0]), pd.Timestamp(span[1])
    return float(((times < start) | (times >= end)).mean())


def _add_label(
    history: BatchHistory,
    label: str,
    rows: pd.DataFrame,
    batches: list[pd.DataFrame],
    positions: list[int],
) -> None:
    history.label = label
    bins, classes = label_bins(rows[label])
    if classes:
        shares = [b[label].dropna().astype(str).value_counts(normalize=True) for b in batches]
        history.label_shares = {c: [float(s.get(c, 0.0)) for s in shares] for c in classes}
        history.label_drift = max(
            (_drift(v, positions) for v in history.label_shares.values()), default=0.0
        )
    history.label_power = {
        name: predictive_power(rows[name], bins) for name in rows.columns if name != label
    }


def _quantile_spread(quantiles: list[float]) -> float:
    if not quantiles:
        return 0.0
    median = quantiles[len(quantiles) // 2]
    return sum(abs(q - median) for q in quantiles) / len(quantiles)


def _quantile_negatives(quantiles: list[float]) -> float:
    return sum(q < 0 for q in quantiles) / len(quantiles) if quantiles else 0.0
