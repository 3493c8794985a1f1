"""Checks of a batch that carries the label: not constant, classes in the proportions
history had, and no column that suddenly predicts it almost perfectly (the label leaked).

How well one column predicts the label is measured the same way for every kind: the column
in at most 20 bins (quantiles of a number, its most common values for a category), the
label as its classes (at most 10 values) or its deciles; then the accuracy of guessing
each bin's most common label, scaled so that 0 is no better than always guessing the most
common label and 1 is perfect. A copy of the label scores 1; in the reference project the
closest honest relative of its label scores about 0.2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from esteira.config import ValidationConfig
from esteira.summaries.profile import column_kind
from esteira.validation.findings import Finding, over_limit

if TYPE_CHECKING:
    import pandas as pd

    from esteira.validation.history import BatchHistory

MAX_CLASSES = 10
"""A number label with at most this many values is a label of classes (0/1, ratings)."""
FEATURE_BINS = 20
LABEL_BINS = 10
MIN_ROWS = 100
"""Below this many rows a column can look predictive by chance: association not judged."""


def label_bins(label: pd.Series) -> tuple[pd.Series, list[str]]:
    """The label as classes (and the class names), or as deciles (and no class names)."""
    import pandas as pd

    present = label.dropna()
    if column_kind(label) != "numeric" or present.nunique() <= MAX_CLASSES:
        return label.astype(str).where(label.notna()), sorted(present.astype(str).unique())
    return pd.qcut(label, LABEL_BINS, labels=False, duplicates="drop"), []


def predictive_power(feature: pd.Series, bins: pd.Series) -> float:
    """How well `feature` alone tells the label's `bins` apart: 0 (not at all) to 1."""
    import numpy as np
    import pandas as pd

    x, y = _feature_bins(feature), bins
    both = x.notna().to_numpy() & y.notna().to_numpy()
    if both.sum() < MIN_ROWS:
        return 0.0
    xs, _ = pd.factorize(x[both])
    ys, classes = pd.factorize(y[both])
    if len(classes) < 2:
        return 0.0
    table = np.bincount(xs * len(classes) + ys, minlength=(xs.max() + 1) * len(classes))
    table = table.reshape(-1, len(classes))
    rows = len(xs)
    base = table.sum(axis=0).max() / rows
    accuracy = table.max(axis=1).sum() / rows
    return float((accuracy - base) / (1 - base))


def _feature_bins(feature: pd.Series) -> pd.Series:
    import pandas as pd

    kind = column_kind(feature)
    if kind == "datetime":
        feature = pd.Series(pd.DatetimeIndex(feature).asi8, index=feature.index).where(
            feature.notna()
        )
        kind = "numeric"
    if kind == "numeric" and feature.nunique() > FEATURE_BINS:
        return pd.qcut(feature.astype(float), FEATURE_BINS, labels=False, duplicates="drop")
    text = feature.astype(str).where(feature.notna())
    common = text.value_counts().index[: FEATURE_BINS - 1]
    return text.where(text.isin(common) | text.isna(), "(other)")


def label_checks(
    df: pd.DataFrame, history: BatchHistory, config: ValidationConfig
) -> list[Finding]:
    label = history.label
    if label is None or label not in df:
        return []
    present = df[label].dropna()
    if present.empty:
        return []  # the null-rate check names it
    findings = []
    if present.nunique() == 1 and len(history.label_shares) != 1:
        value = present.iloc[0]
        findings.append(
            Finding(label, "label_constant", "error", 1.0, None,
                    f"the label is {value} on every row: nothing to learn from or judge a "
                    "model on; check how the batch was labelled")
        )  # fmt: skip
    bins, _ = label_bins(df[label])
    if history.label_shares:
        findings.append(_balance(present, history, config.max_label_share_shift))
    for name in df.columns:
        if name == label or name in config.ignore_columns or name not in history.label_power:
            continue
        before = history.label_power[name]
        limit = config.for_column(name).max_label_association
        if before > limit:  # predicted the label as well before: how the data is
            continue
        findings.append(
            over_limit(name, "label_association", predictive_power(df[name], bins), limit,
                       f"predicts the label {label} at {{value:.2f}} (0-1; reference "
                       f"{before:.2f}, limit {{limit}}): the label leaked into this column; "
                       "drop it from the batch or fix the source")
        )  # fmt: skip
    return findings


def _balance(present: pd.Series, history: BatchHistory, limit: float) -> Finding:
    shares = present.astype(str).value_counts(normalize=True)
    allowance = history.label_drift * (history.gap - 1)
    worst, detail = 0.0, ""
    for name in sorted(set(history.label_shares) | set(shares.index)):
        earlier = history.label_shares.get(name, [0.0])
        low, high = min(earlier) - allowance, max(earlier) + allowance
        share = float(shares.get(name, 0.0))
        outside = max(low - share, share - high, 0.0)
        if outside > worst:
            worst = outside
            detail = (f"class {name!r} is {share:.1%} of the batch, outside the "
                      f"{min(earlier):.1%}-{max(earlier):.1%} of earlier batches by")  # fmt: skip
    return over_limit(
        history.label, "label_share_shift", worst, limit,  # type: ignore[arg-type]
        f"{detail} {{value:.1%}} (limit {{limit:.1%}}); check how the batch was labelled",
    )  # fmt: skip
