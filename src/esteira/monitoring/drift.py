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

import math
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from esteira.summaries.distances import (
    chi_square_test,
    js_distance,
    ks_test,
    psi,
    tally_ks_test,
    tally_wasserstein,
    wasserstein_normed,
)

if TYPE_CHECKING:
    import pandas as pd

    from esteira.summaries.profile import ColumnProfile, Profile
    from esteira.summaries.tally import Tally

SMALL_REFERENCE = 1000
P_VALUE = 0.05
WASSERSTEIN_LIMIT = 0.1
JS_LIMIT = 0.1


def column_drift(ref: ColumnProfile, values: pd.Series) -> dict[str, Any] | None:
    """The test that decides this column, its figure, its limit and the verdict."""
    present = values.dropna()
    if present.empty or not ref.counts:
        return None
    data = present.to_numpy(dtype=float) if ref.kind == "numeric" else None
    return _verdict(
        ref, ref.bin_counts(present), len(present),
        lambda: ks_test(ref.quantiles, ref.count - ref.nulls, data),
        lambda: wasserstein_normed(ref.quantiles, data, ref.std or 0.0),
    )  # fmt: skip


def tally_drift(tally: Tally) -> dict[str, Any] | None:
    """`column_drift` of the data a tally counted (streamed in batches): the same tests and
    limits; the KS statistic exact, the Wasserstein distance read from the tally's grid."""
    ref = tally.reference
    if not tally.present or not ref.counts:
        return None
    return _verdict(ref, tally.bin_counts(), tally.present,
                    lambda: tally_ks_test(tally), lambda: tally_wasserstein(tally))  # fmt: skip


def _verdict(
    ref: ColumnProfile,
    current: Any,
    rows: int,
    ks: Callable[[], tuple[float, float]],
    wasserstein: Callable[[], float],
) -> dict[str, Any]:
    found: dict[str, Any] = {"psi": round(psi(ref.counts, current), 6), "rows": rows}
    small = ref.count - ref.nulls <= SMALL_REFERENCE
    if ref.kind == "numeric":
        if small:
            d, p = ks()
            found |= {"test": "ks", "statistic": d, "value": p, "threshold": P_VALUE}
            found["drifted"] = p < P_VALUE
        else:
            w = wasserstein()
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


def severity(found: dict[str, Any]) -> float:
    """A column's figure against its limit: above 1 means drifted, whatever the test."""
    if found["test"] in ("ks", "chi_square"):  # p-values: smaller is worse
        p = max(found["value"], 1e-300)
        return math.log(p) / math.log(found["threshold"])
    return found["value"] / found["threshold"]


def drift_share(drifted: dict[str, Any]) -> float:
    """The share of counted columns that drifted (0 when none is counted)."""
    verdicts = [d["drifted"] for d in drifted.values() if counted(d)]
    return sum(verdicts) / len(verdicts) if verdicts else 0.0
