"""Batch scoring rows/s: the embedded engine (chunks of Arrow batches, the model in this
process) against Spark in local mode on the same cores (`mlflow.pyfunc.spark_udf` in
Spark's Python workers, Parquet files committed to Delta), on the reference project's
champion and its January features repeated to `--rows` rows.

    python benchmarks/spark_scoring.py [--rows 1000000] [--repeats 2]

The project is trained once into /tmp/esteira-spark-bench (reused between runs). Spark's
start (its JVM, about 10 s) is timed apart: on a cluster the session is already running.
Each engine scores the table `--repeats` times in turns; the best of each is compared.
Target: Spark within 2x of the embedded engine's rows/s on 2 cores (its value is on more).
The machine is shared: read the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esteira.project import Project

REPO = Path(__file__).resolve().parents[1]
HOME = Path(tempfile.gettempdir()) / "esteira-spark-bench"


def trained_project() -> Project:
    from esteira import load_project
    from esteira.pipelines.runner import run_pipeline

    root = HOME / "flight_delays"
    if not root.exists():
        shutil.copytree(REPO / "examples" / "flight_delays", root,
                        ignore=shutil.ignore_patterns(".esteira", "__pycache__"))  # fmt: skip
    project = load_project(root)
    if not project.lake.exists("flight_features"):
        print("training the reference project on January 2013 (once) ...", flush=True)
        run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    return project


def big_table(project: Project, rows: int) -> str:
    import pandas as pd

    name = f"features_{rows}"
    if not project.lake.exists(name):
        features, _ = project.lake.read("flight_features")
        copies = -(-rows // len(features))
        project.lake.append(name, pd.concat([features] * copies).head(rows))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from esteira.serving.batch import predict_table
    from esteira.spark.scoring import predict_table_spark
    from esteira.spark.session import spark_session

    os.environ.setdefault("ESTEIRA_HOME", str(HOME / "home"))
    project = trained_project()
    table = big_table(project, args.rows)
    cores = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    spark = spark_session(cores)
    print(f"Spark local[{cores}] started in {time.perf_counter() - started:.1f} s")
    best = {"embedded": float("inf"), "spark": float("inf")}
    for repeat in range(args.repeats):
        for engine in ("embedded", "spark") if repeat % 2 == 0 else ("spark", "embedded"):
            t = time.perf_counter()
            if engine == "spark":
                done = predict_table_spark(project, "flight_delays", table, f"out_{engine}",
                                           version="1", spark=spark)  # fmt: skip
            else:
                done = predict_table(project, "flight_delays", table, f"out_{engine}", version="1")
            seconds = time.perf_counter() - t
            best[engine] = min(best[engine], seconds)
            print(f"  {engine:8s} {done.rows:,} rows in {seconds:5.1f} s "
                  f"= {done.rows / seconds:,.0f} rows/s", flush=True)  # fmt: skip
    rates = {engine: args.rows / seconds for engine, seconds in best.items()}
    ratio = rates["spark"] / rates["embedded"]
    print(f"\nbest of {args.repeats}, {args.rows:,} rows x {cores} cores: embedded "
          f"{rates['embedded']:,.0f} rows/s, Spark {rates['spark']:,.0f} rows/s: Spark at "
          f"{ratio:.2f}x the embedded rate (target >= 0.5x)")  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()
