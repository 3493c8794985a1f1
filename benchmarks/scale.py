"""Drift on a table larger than memory: N rows x C number columns of a Delta table, streamed
in Arrow batches and tallied against a stored reference profile (`summaries/tally.py`),
one process per size so each peak memory is its own.

    python benchmarks/scale.py [--rows 10000000] [--columns 100] [--small-rows 1000000]

Writes a table of `--small-rows` and one of `--rows` once (float32 columns, half of them
shifted so that drift has something to find; Parquet row groups of 128k rows, as a writer
would size them; cached in /tmp between runs), profiles a 200,000-row sample of the
unshifted distribution as the reference, then times the drift of each whole table:
seconds, rows/s, peak memory. Memory must not grow with the rows (the
tallies are fixed-size; the batches are streamed). Targets: 10M x 100 under 60 s and under
1 GiB. The machine is shared: read the rows/s and the memory ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "esteira-scale"
CHUNK = 500_000
ROW_GROUP_ROWS = 131_072  # 51 MB at 100 float32 columns

MEASURE = """
import json, os, sys, time
from deltalake import DeltaTable
from esteira.monitoring.drift import tally_drift
from esteira.summaries.profile import Profile
from esteira.summaries.tally import tally_columns

def peak_mb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024

table, reference = sys.argv[1], sys.argv[2]
profile = Profile.from_dict(json.load(open(reference)))
columns = list(profile.columns)
started = time.perf_counter()
dataset = DeltaTable(table).to_pyarrow_dataset()
# Batches of 16k rows, a few read ahead (not the reader's default dozens): with 64k-row
# batches the process settled at 1.3 GB, with these at 0.7 GB, for 1M rows as for 10M.
batches = dataset.to_batches(columns=columns, batch_size=16_384, batch_readahead=2,
                             fragment_readahead=1)
tallies = tally_columns(profile.columns, batches, columns, threads=os.cpu_count() or 1)
found = {c: tally_drift(t) for c, t in tallies.items()}
seconds = time.perf_counter() - started
counted = tallies[columns[0]].rows
print(json.dumps({"rows": counted, "seconds": seconds, "peak_mb": peak_mb(),
                  "drifted": sum(f["drifted"] for f in found.values())}))
"""


def table(rows: int, columns: int) -> Path:
    """The benchmark's Delta table (written once; half its columns shifted by 0.3 sd)."""
    import pandas as pd
    from deltalake import WriterProperties, write_deltalake

    properties = WriterProperties(max_row_group_size=ROW_GROUP_ROWS)
    path = CACHE / f"t_{rows}_{columns}"
    if (path / "_delta_log").is_dir():
        return path
    print(f"writing {rows:,} x {columns} to {path} (once) ...", flush=True)
    rng = np.random.default_rng(7)
    shift = np.where(np.arange(columns) % 2 == 0, 0.3, 0.0).astype("float32")
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        data = rng.standard_normal((n, columns), dtype=np.float32) + shift
        frame = pd.DataFrame(data, columns=[f"x{i}" for i in range(columns)])
        write_deltalake(str(path), frame, mode="append", writer_properties=properties)
    return path


def reference(columns: int) -> Path:
    """A stored profile of 200,000 rows of the unshifted distribution."""
    import pandas as pd

    from esteira.summaries.profile import infer_profile

    path = CACHE / f"reference_{columns}.json"
    if not path.exists():
        rng = np.random.default_rng(11)
        sample = rng.standard_normal((200_000, columns), dtype=np.float32)
        frame = pd.DataFrame(sample, columns=[f"x{i}" for i in range(columns)])
        path.write_text(json.dumps(infer_profile(frame).to_dict()))
    return path


def measure(path: Path, profile: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(profile)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    started = time.perf_counter()
    paths = [table(n, args.columns) for n in (args.small_rows, args.rows)]
    profile = reference(args.columns)
    print(f"tables ready in {time.perf_counter() - started:.0f} s; streaming drift ...")
    results = [measure(path, profile) for path in paths]
    print(f"\ndrift of {args.columns} columns, streamed from Delta in Arrow batches")
    print(f"{'rows':>12}{'seconds':>10}{'rows/s':>14}{'peak MB':>10}{'drifted':>9}")
    for r in results:
        print(f"{r['rows']:>12,}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>14,.0f}"
              f"{r['peak_mb']:>10.0f}{r['drifted']:>9}")  # fmt: skip
    small, large = results
    print(
        f"\nmemory at {large['rows']:,} rows / at {small['rows']:,}: "
        f"{large['peak_mb'] / small['peak_mb']:.2f}x (rows {large['rows'] / small['rows']:.0f}x)"
    )
    print(
        f"targets: under 60 s ({large['seconds']:.1f} s), under 1 GiB ({large['peak_mb']:.0f} MB)"
        f"; {large['drifted']} of {args.columns} columns drifted ({args.columns // 2} shifted)"
    )


if __name__ == "__main__":
    main()
