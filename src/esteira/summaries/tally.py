"""A column's current data summarized against its reference profile, batch by batch: what
drift needs of the current data, in memory that does not grow with the rows, and merged
across batches, files or workers.

Numbers are counted in the bins of a grid made of the reference's histogram edges and its
quantiles (each gap between consecutive quantiles cut in `SUBDIVISIONS`, and points beyond
the reference's range on both sides; about 1,100 bins, 9 KB a column): the histogram's
counts (PSI) are sums of grid bins, the current CDF at each reference quantile (the
Kolmogorov-Smirnov statistic) is exact, and each current quantile (Wasserstein) is the mean
of the values in its grid bin, within that bin's width of the true one. Categories are counted per
reference category plus "other", as the profile's histogram is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.summaries.profile import ColumnProfile

if TYPE_CHECKING:
    import pyarrow as pa

SUBDIVISIONS = 8
TAIL_SPANS = 4
TAIL_POINTS = 128


@dataclass
class Tally:
    reference: ColumnProfile
    rows: int = 0
    nulls: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Numbers: the sum of the values in each grid bin (where in its bin the mass lies)."""
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def of(cls, reference: ColumnProfile) -> Tally:
        tally = cls(reference)
        if reference.kind == "numeric":
            tally.grid = _grid(reference)
            tally.counts = np.zeros(len(tally.grid) + 1, dtype=np.int64)
            tally.sums = np.zeros(len(tally.grid) + 1)
        else:
            tally.counts = np.zeros(len(reference.categories) + 1, dtype=np.int64)
        return tally

    @property
    def present(self) -> int:
        return self.rows - self.nulls

    def add(self, values: pa.Array | pa.ChunkedArray | np.ndarray) -> Tally:
        """Count a batch of the column's values (missing ones as nulls)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        self.rows += len(array)
        self.nulls += array.null_count
        if self.reference.kind == "numeric":
            data = pc.drop_null(array).to_numpy(zero_copy_only=False)
            if data.dtype.kind != "f":
                data = data.astype(float)
            nan = np.isnan(data)
            if nan.any():  # NaN is missing, as pandas takes it
                self.nulls += int(nan.sum())
                data = data[~nan]
            # Sorted once, the grid's bins are ranges of it: counts and sums from positions
            # (twice as fast as a binary search of each value in the grid).
            data = np.sort(data)
            at = np.searchsorted(data, self.grid, side="right")  # values at or below each
            bounds = np.concatenate([[0], at, [len(data)]])
            self.counts += np.diff(bounds)
            self.sums += np.diff(np.concatenate([[0.0], np.cumsum(data, dtype=float)])[bounds])
        else:
            present = pc.drop_null(array).cast(pa.string())
            found = pc.value_counts(present)
            observed = dict(zip(found.field("values").to_pylist(),
                                found.field("counts").to_pylist(), strict=True))  # fmt: skip
            known = [observed.get(c, 0) for c in self.reference.categories]
            self.counts += np.array([*known, len(present) - sum(known)], dtype=np.int64)
        return self

    def merge(self, other: Tally) -> Tally:
        """This tally and another of the same reference (another file, worker, batch)."""
        self.rows += other.rows
        self.nulls += other.nulls
        self.counts += other.counts
        self.sums += other.sums
        return self

    def bin_counts(self) -> np.ndarray:
        """Counts in the reference histogram's bins (`ColumnProfile.bin_counts`)."""
        if self.reference.kind != "numeric":
            return self.counts
        edges = np.searchsorted(self.grid, self.reference.edges)  # each edge is on the grid
        cumulative = np.concatenate([[0], np.cumsum(self.counts)])
        bounds = np.concatenate([[0], edges + 1, [len(self.counts)]])
        return np.diff(cumulative[bounds])

    def cdf_at(self, points: np.ndarray) -> np.ndarray:
        """The share of present values at or below each of `points` (points on the grid)."""
        at = np.searchsorted(self.grid, points)
        return np.cumsum(self.counts)[at] / max(self.present, 1)

    def quantiles(self, levels: np.ndarray) -> np.ndarray:
        """The current quantiles at `levels`, each the mean of the values in the grid bin
        that holds it: within a bin's width of the true one, exact for values that sit on
        a few points (integers, a constant)."""
        cumulative = np.cumsum(self.counts)
        bins = np.searchsorted(cumulative, levels * self.present, side="right")
        bins = np.minimum(bins, len(self.counts) - 1)
        return self.sums[bins] / np.maximum(self.counts[bins], 1)


def _grid(reference: ColumnProfile) -> np.ndarray:
    """The reference's quantiles and histogram edges, the gaps between quantiles cut in
    `SUBDIVISIONS`, and beyond them on each side `TAIL_POINTS` points over `TAIL_SPANS`
    times their span: data that moved out of the reference's range keeps its shape."""
    q = np.asarray(reference.quantiles, dtype=float)
    steps = np.linspace(0, 1, SUBDIVISIONS, endpoint=False)
    fine = (q[:-1, None] + np.diff(q)[:, None] * steps).ravel() if len(q) > 1 else q
    span = (q[-1] - q[0]) or reference.std or 1.0
    out = span * np.linspace(0, TAIL_SPANS, TAIL_POINTS + 1)[1:]
    parts = [q[0] - out[::-1], fine, q, q[-1] + out, np.asarray(reference.edges, dtype=float)]
    return np.unique(np.concatenate(parts))


def tally_columns(
    references: dict[str, ColumnProfile], batches: Any, columns: list[str], threads: int = 1
) -> dict[str, Tally]:
    """Tallies of `columns` over Arrow record batches (any iterable of them); with `threads`,
    the columns of a batch are counted side by side (sorting releases Python's lock)."""
    from concurrent.futures import ThreadPoolExecutor

    tallies = {c: Tally.of(references[c]) for c in columns}
    with ThreadPoolExecutor(threads) as pool:
        for batch in batches:
            counted = [pool.submit(tallies[c].add, batch.column(c)) for c in columns]
            for done in counted:
                done.result()
    return tallies
