"""The metadata store's everyday queries with a long history, on SQLite and on a real
PostgreSQL server (started here on a temporary directory and port, as the tests do).

    python benchmarks/metadata.py [--runs 10000]

Fills each store with 10 and with `--runs` pipeline runs of 6 steps (inputs, outputs and
table reads each), 2,000 alias changes and gate decisions, then times what `esteira runs`,
`show`, the step cache, the promote step and CT ask: the median of 50 calls each. History
must not slow them down; target: under 50 ms each on PostgreSQL with 10,000 runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from postgres import PostgresServer
from sqlalchemy import insert

from esteira.metadata import (
    AliasChange,
    GateDecision,
    MetadataStore,
    PipelineRun,
    StepIO,
    StepRun,
    TableAccess,
)

STEPS = ["ingest", "features", "split", "train", "evaluate", "register"]


def fill(store: MetadataStore, runs: int) -> None:
    """`runs` pipeline runs of 6 steps (an output, an input and a table read each), and
    2,000 alias changes and gate decisions, inserted in bulk."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows: dict[type, list[dict]] = {PipelineRun: [], StepRun: [], StepIO: [], TableAccess: []}
    for i in range(runs):
        at = start + timedelta(minutes=i)
        run_id = uuid.uuid4().hex[:12]
        rows[PipelineRun].append(dict(id=run_id, project="p", pipeline="train", params={},
                                      status="completed", executor="host", code_version="c",
                                      started_at=at, ended_at=at, duration_s=1.0))  # fmt: skip
        for seq, step in enumerate(STEPS):
            step_id = uuid.uuid4().hex
            rows[StepRun].append(dict(id=step_id, pipeline_run_id=run_id, seq=seq, step=step,
                                      status="completed", code_hash="h", params={}, metrics={},
                                      cache_key=f"{i}-{seq}", ended_at=at))  # fmt: skip
            for direction, name in (("out", step), ("in", "x")):
                rows[StepIO].append(dict(step_run_id=step_id, direction=direction, name=name,
                                         uri=f"file:///a/{i}/{name}", hash="x", kind="pickle",
                                         size=1))  # fmt: skip
            rows[TableAccess].append(dict(step_run_id=step_id, mode="read", table="raw",
                                          version=i))  # fmt: skip
    with store.session() as s:
        for model, values in rows.items():
            for chunk in range(0, len(values), 5000):
                s.execute(insert(model), values[chunk : chunk + 5000])
    store.add(*[AliasChange(model="m", alias="champion", action="promote", to_version=str(v),
                            actor="me", reason="r") for v in range(2000)])  # fmt: skip
    store.add(*[GateDecision(model="m", version=str(v), champion_version=str(v - 1),
                             passed=v % 2 == 0, summary="s", checks={})
                for v in range(2000)])  # fmt: skip


def timed(call: Callable[[], object], n: int = 50) -> float:
    call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def measure(store: MetadataStore) -> dict[str, float]:
    newest = store.runs(limit=1)[0].id
    runs = len(store.runs(limit=10**9))
    return {
        "runs (esteira runs)": timed(lambda: store.runs(limit=20)),
        "one run with its steps (show)": timed(lambda: store.run(newest).steps),
        "cached step by key": timed(lambda: store.cached_step(f"{runs // 2}-3")),
        "latest output of a step": timed(lambda: store.latest_output("train", "train", "train")),
        "alias history": timed(lambda: store.alias_history("m", "champion")),
        "passing gate decisions": timed(lambda: store.gate_decisions("m", passed=True)),
        "CT runs": timed(lambda: store.ct_runs("m")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        for backend in ("SQLite", "PostgreSQL"):
            for runs in (10, args.runs):
                url = f"sqlite:///{tmp}/{runs}.db" if backend == "SQLite" else pg.new_database()
                store = MetadataStore(url)
                fill(store, runs)
                results[backend, runs] = measure(store)
    print(f"\nmedian of 50 calls, ms   {'SQLite':>20}{'PostgreSQL':>20}")
    print(f"{'':34}" + f"{'10 runs':>10}{f'{args.runs:,}':>10}" * 2)
    for query in results["SQLite", 10]:
        figures = [results[b, n][query] for b in ("SQLite", "PostgreSQL") for n in (10, args.runs)]
        print(f"  {query:<32}" + "".join(f"{f:>10.2f}" for f in figures))
    worst = max(results["PostgreSQL", args.runs].values())
    print(f"\ntarget: every query under 50 ms on PostgreSQL with {args.runs:,} runs: slowest "
          f"{worst:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
