"""A profile summarizes a DataFrame per column: kind, nulls, range, moments, and a histogram
(quantile bins for numbers, top values for categories). It is what a new batch is
validated against, small enough to store as JSON next to the data it describes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.summaries.sketch import KnownValues

if TYPE_CHECKING:
    import pandas as pd

QUANTILE_BINS = 10
TOP_CATEGORIES = 100
MAX_SKETCH_MISSES = 0.5
"""Past this false-positive share (about 20,000 values) a sketch no longer counts new values."""
FINE_QUANTILES = 100


def quantile_levels(n: int = FINE_QUANTILES) -> np.ndarray:
    """Midpoint levels (0.5/n, 1.5/n, ...): each quantile stands for an equal share."""
    return (np.arange(n) + 0.5) / n


@dataclass
class ColumnProfile:
    name: str
    kind: str  # numeric | categorical | datetime
    count: int
    nulls: int
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: list[float] = field(default_factory=list)
    """Inner quantile edges; bin i holds values in (edges[i-1], edges[i]]."""
    counts: list[int] = field(default_factory=list)
    """Rows per bin (numeric) or per category in `categories`, then "other" (categorical)."""
    categories: list[str] = field(default_factory=list)
    quantiles: list[float] = field(default_factory=list)
    """Quantiles at 0.5%, 1.5%, ..., 99.5%: a fine summary for KS and Wasserstein."""
    known: str = ""
    """A category column with more values than `categories` keeps: a sketch of every value
    seen (`KnownValues`, as text), to tell how many of a batch's values are new."""

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    def bin_counts(self, values: pd.Series) -> np.ndarray:
        """Counts of `values` in this column's bins (same layout as `counts`)."""
        if self.kind == "numeric":
            data = values.dropna().to_numpy(dtype=float)
            return np.bincount(np.searchsorted(self.edges, data), minlength=len(self.edges) + 1)
        observed = values.dropna().astype(str).value_counts()
        known = [int(observed.get(c, 0)) for c in self.categories]
        return np.array([*known, int(observed.sum()) - sum(known)])

    def unseen_share(self, values: pd.Series) -> float | None:
        """The share of `values` (of a category column) never seen in the reference, or None
        when the profile cannot tell: its categories are not all there is and it has no
        sketch (a profile written before sketches), or the sketch is too full to trust."""
        present = values.dropna().astype(str)
        if present.empty:
            return None
        if self.counts and self.counts[-1] == 0:  # every reference category is listed
            return float((~present.isin(self.categories)).mean())
        if not self.known:
            return None
        sketch = KnownValues.from_text(self.known)
        missed = sketch.false_positive_rate()
        if missed > MAX_SKETCH_MISSES:
            return None
        distinct = present.value_counts()
        seen = sketch.contains(distinct.index)
        # Unseen values the sketch took for seen are missing from the count: scale it up.
        return min(float(distinct[~seen].sum() / len(present)) / (1 - missed), 1.0)


@dataclass
class Profile:
    rows: int
    columns: dict[str, ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {n: asdict(c) for n, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        columns = {n: ColumnProfile(**c) for n, c in data["columns"].items()}
        return cls(data["rows"], columns)


def column_kind(series: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


def infer_profile(df: pd.DataFrame, columns: list[str] | None = None) -> Profile:
    """Profile `df` (or the given columns of it)."""
    return Profile(len(df), {c: profile_column(df[c], c) for c in (columns or list(df.columns))})


def profile_column(series: pd.Series, name: str) -> ColumnProfile:
    kind = column_kind(series)
    nulls = int(series.isna().sum())
    base = ColumnProfile(name, kind, len(series), nulls)
    values = series.dropna()
    if values.empty:
        return base
    if kind == "numeric":
        data = values.to_numpy(dtype=float)
        quantiles = np.quantile(data, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])
        edges = np.unique(quantiles).tolist()
        base.minimum, base.maximum = float(data.min()), float(data.max())
        base.mean, base.std = float(data.mean()), float(data.std())
        base.edges = edges
        base.quantiles = np.quantile(data, quantile_levels()).tolist()
        base.counts = np.bincount(np.searchsorted(edges, data), minlength=len(edges) + 1).tolist()
    elif kind == "categorical":
        observed = values.astype(str).value_counts()
        top = observed.head(TOP_CATEGORIES)
        base.categories = top.index.tolist()
        base.counts = [*top.astype(int).tolist(), int(len(values) - top.sum())]
        if len(observed) > TOP_CATEGORIES:
            base.known = KnownValues.of(observed.index).to_text()
    else:
        base.minimum = float(values.min().timestamp())
        base.maximum = float(values.max().timestamp())
    return base
