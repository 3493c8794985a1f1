"""Checks of a batch's rows as a whole: how many, how many duplicated, and whether its
date-times lie inside the batch's period (timestamps shifted by years land in a month's
batch with every value outside it, and join to nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira.config import ValidationConfig
from esteira.validation.findings import BATCH, Finding, over_limit
from esteira.validation.history import BatchHistory, outside_share

if TYPE_CHECKING:
    import pandas as pd


def row_checks(df: pd.DataFrame, history: BatchHistory, config: ValidationConfig) -> list[Finding]:
    findings = [_row_count(len(df), history, config)]
    if history.duplicate_rate is not None and len(df):
        try:
            duplicated = float(df.duplicated().mean())
        except TypeError:  # unhashable cells: not counted
            duplicated = history.duplicate_rate
        findings.append(
            over_limit(BATCH, "duplicate_rate_increase", duplicated - history.duplicate_rate,
                       config.max_duplicate_rate_increase,
                       f"{duplicated:.1%} of rows are exact copies of another row (reference "
                       f"{history.duplicate_rate:.1%}, limit +{{limit:.1%}}); remove the "
                       "copies or fix the extract")
        )  # fmt: skip
    if history.period is not None:
        findings += [
            _in_period(df[name], name, history, config.for_column(name).max_outside_period_rate)
            for name, before in history.outside_period.items()
            if name in df and name not in config.ignore_columns
            and before <= config.for_column(name).max_outside_period_rate
        ]  # fmt: skip
    return findings


def _row_count(rows: int, history: BatchHistory, config: ValidationConfig) -> Finding:
    import numpy as np

    typical = float(np.median(history.rows))
    ratio = rows / typical if typical else 1.0
    low, high = config.min_row_ratio, config.max_row_ratio
    # One figure for both limits: how many times too few or too many, 1 at the limit.
    excess = max(low / ratio if ratio else float("inf"), ratio / high)
    finding = over_limit(
        BATCH, "row_ratio", excess, 1.0,
        f"{rows:,} row{'' if rows == 1 else 's'}, {ratio:.3g} times the {typical:,.0f} of a "
        f"recent batch (limits "
        f"{low:g}..{high:g}: min_row_ratio, max_row_ratio); check the extract is complete "
        "and not repeated",
    )  # fmt: skip
    finding.value, finding.threshold = round(ratio, 6), None
    return finding


def _in_period(values: pd.Series, name: str, history: BatchHistory, limit: float) -> Finding:
    start, end = history.period  # type: ignore[misc]
    outside = outside_share(values, (start, end))
    return over_limit(
        name, "outside_period_rate", outside or 0.0, limit,
        f"{{value:.1%}} of values lie outside the batch's period {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} (limit {{limit:.1%}}); check the timestamps and the batch label",
    )  # fmt: skip
