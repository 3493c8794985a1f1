"""Drift of data streamed in Arrow batches (`Tally`) against the same decision on the data
in memory (`column_drift`), on real flights: January-March as the reference, June-August
as the current data. Same test, same verdict; PSI, chi-square, Jensen-Shannon and the
Kolmogorov-Smirnov statistic equal; Wasserstein within 0.01 (a hundredth of the reference's
standard deviation) or 5% of its value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_corrupt_batches import FLIGHTS, WEATHER, table

from esteira.monitoring.drift import column_drift, tally_drift
from esteira.summaries.profile import infer_profile
from esteira.summaries.tally import Tally, tally_columns


def months(name: str, chosen: list[int]) -> pd.DataFrame:
    df = table(name)
    return df[df["month"].isin(chosen)].drop(columns=["batch", "time_hour"]).reset_index(drop=True)


@pytest.mark.parametrize("name", [FLIGHTS, WEATHER])
@pytest.mark.parametrize("small", [False, True], ids=["distances", "p-value tests"])
def test_streamed_drift_decides_as_in_memory(name, small):
    reference = months(name, [1, 2, 3])
    if small:  # a reference of at most 1,000 rows: KS and chi-square decide
        reference = reference.sample(800, random_state=1)
    current = months(name, [6, 7, 8])
    profile = infer_profile(reference)
    columns = [c for c, p in profile.columns.items() if p.kind in ("numeric", "categorical")]
    batches = pa.Table.from_pandas(current[columns], preserve_index=False).to_batches(20_000)
    tallies = tally_columns(profile.columns, batches, columns)
    compared = 0
    for c in columns:
        expected, got = column_drift(profile.columns[c], current[c]), tally_drift(tallies[c])
        if expected is None:
            assert got is None
            continue
        compared += 1
        assert got["test"] == expected["test"] and got["rows"] == expected["rows"], c
        assert got["psi"] == pytest.approx(expected["psi"], abs=1e-9), c
        if expected["test"] == "wasserstein":
            assert abs(got["value"] - expected["value"]) <= max(0.01, 0.05 * expected["value"]), c
        elif expected["test"] == "ks":
            assert got["statistic"] == pytest.approx(expected["statistic"], abs=1e-12), c
        else:
            assert got["value"] == pytest.approx(expected["value"], rel=1e-9, abs=1e-12), c
        if abs(expected["value"] - expected["threshold"]) > 0.01:  # not on the line
            assert got["drifted"] == expected["drifted"], c
    assert compared >= 10


def test_tallies_merge_as_if_counted_at_once():
    reference = months(FLIGHTS, [1])
    profile = infer_profile(reference)
    current = months(FLIGHTS, [7])
    whole = Tally.of(profile.columns["dep_delay"]).add(current["dep_delay"].to_numpy())
    middle = len(current) // 2
    halves = [Tally.of(profile.columns["dep_delay"]).add(part.to_numpy())
              for part in (current.dep_delay[:middle], current.dep_delay[middle:])]  # fmt: skip
    merged = halves[0].merge(halves[1])
    assert (merged.rows, merged.nulls) == (whole.rows, whole.nulls)
    assert np.array_equal(merged.counts, whole.counts)
    assert tally_drift(merged) == tally_drift(whole)
    carriers = Tally.of(profile.columns["carrier"]).add(pa.array(current["carrier"]))
    assert carriers.bin_counts().sum() == current["carrier"].notna().sum()
