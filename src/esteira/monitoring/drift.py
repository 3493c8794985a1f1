"""Drift of a column against its reference profile.

Which test decides a column follows the sample sizes, as Evidently does: with a small
reference (at most 1,000 rows) p-value tests (Kolmogorov-Smirnov for numbers, chi-square
for categories, drift at p < 0.05); with a larger one, distances with thresholds
(Wasserstein divided by the reference standard deviation for numbers, Jensen-Shannon for
categories, drift at 0.1). On thousands of rows a p-value test flags any harmless shift
(on the flights, KS gives p < 1e-8 on every numeric column between Jan-Mar and Jun-Aug), a
distance does not. PSI is reported beside, for reference.

The drift share (what the report headlines and the drift trigger watches) counts the model's
inputs only, and leaves out `[monitoring] ignore_columns`: columns that move by design, such
as calendar columns on seasonal data, are still measured and shown, marked not counted.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from esteira.summaries.distances import (
    chi_square_test,
    js_distance,
    ks_test,
    psi,
    wasserstein_normed,
)

if TYPE_CHECKING:
    import pandas as pd

    from esteira.summaries.profile import ColumnProfile, Profile

SMALL_REFERENCE = 1000
P_VALUE = 0.05
WASSERSTEIN_LIMIT = 0.1
JS_LIMIT = 0.1


def column_drift(ref: ColumnProfile, values: pd.Series) -> dict[str, Any] | None:
    """The test that decides this column, its figure, its limit and the verdict."""
    present = values.dropna()
    if present.empty or not ref.counts:
        return None
    current = ref.bin_counts(present)
    found: dict[str, Any] = {"psi": round(psi(ref.counts, current), 6), "rows": len(present)}
    small = ref.count - ref.nulls <= SMALL_REFERENCE
    if ref.kind == "numeric":
        data = present.to_numpy(dtype=float)
        if small:
            d, p = ks_test(ref.quantiles, ref.count - ref.nulls, data)
            found |= {"test": "ks", "statistic": d, "value": p, "threshold": P_VALUE}
            found["drifted"] = p < P_VALUE
        else:
            w = wasserstein_normed(ref.quantiles, data, ref.std or 0.0)
            found |= {"test": "wasserstein", "value": w, "threshold": WASSERSTEIN_LIMIT}
            found["drifted"] = w >= WASSERSTEIN_LIMIT
    else:
        if small:
            statistic, p = chi_square_test(ref.counts, current)
            found |= {"test": "chi_square", "statistic": statistic, "value": p,
                      "threshold": P_VALUE, "drifted": p < P_VALUE}  # fmt: skip
        else:
            js = js_distance(ref.counts, current)
            found |= {"test": "jensen_shannon", "value": js, "threshold": JS_LIMIT,
                      "drifted": js >= JS_LIMIT}  # fmt: skip
    found["value"] = round(float(found["value"]), 6)
    found["drifted"] = bool(found["drifted"])
    return found


def drift_of(
    reference: Profile, data: pd.DataFrame, columns: list[str], ignore: Collection[str] = ()
) -> dict[str, Any]:
    """Drift of each of `columns`; those in `ignore` are marked `counted: false`."""
    out = {}
    for c in columns:
        if c in reference.columns and c in data.columns:
            result = column_drift(reference.columns[c], data[c])
            if result is not None:
                out[c] = result | ({"counted": False} if c in ignore else {})
    return out


def counted(found: dict[str, Any]) -> bool:
    """Whether a column's drift counts in the drift share: a model input not ignored."""
    return bool(found.get("counted", True)) and found.get("kind") != "prediction"


def drift_share(drifted: dict[str, Any]) -> float:
    """The share of counted columns that drifted (0 when none is counted)."""
    verdicts = [d["drifted"] for d in drifted.values() if counted(d)]
    return sum(verdicts) / len(verdicts) if verdicts else 0.0
