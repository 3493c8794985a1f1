"""esteira's drift computation vs Evidently's data drift preset, side by side on the same
data: the flight-delay model's 17 features, January-March 2013 as reference, June-August
as current (about 79k vs 85k rows). Prints time and peak memory of each, their ratios, and
whether both reach the same verdict on every column where they use the same test.

    python benchmarks/drift.py --evidently-python /tmp/evvenv/bin/python

Evidently 0.7 does not import with pandas 3, so it runs in its own environment:
    python3 -m venv /tmp/evvenv
    /tmp/evvenv/bin/pip install "evidently==0.7.23" "pandas<3" pyarrow
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from esteira.pipelines.runner import run_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "flight_delays"

# Both programs run in their own interpreter: each reports its own time and memory.
PROLOGUE = """
import json, sys, time
def peak_mb():  # this process's high-water mark (ru_maxrss would count the parent's too)
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) / 1024
"""

ESTEIRA = (
    PROLOGUE
    + """
t = time.perf_counter()
import pandas as pd
from esteira.monitoring.drift import drift_of
from esteira.summaries.profile import infer_profile
imported = time.perf_counter() - t
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
columns = json.loads(sys.argv[3])
t = time.perf_counter()
profile = infer_profile(reference[columns])  # done once, when the model is trained
profiled = time.perf_counter() - t
t = time.perf_counter()
drift = drift_of(profile, current, columns)
seconds = time.perf_counter() - t
print(json.dumps({"import_s": imported, "profile_s": profiled, "drift_s": seconds,
                  "peak_mb": peak_mb(),
                  "columns": {c: [d["test"], d["value"], d["drifted"]] for c, d in drift.items()}}))
"""
)

EVIDENTLY = (
    PROLOGUE
    + """
t = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
imported = time.perf_counter() - t
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
numeric, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
t = time.perf_counter()
result = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(current[numeric + categorical], data_definition=definition),
    Dataset.from_pandas(reference[numeric + categorical], data_definition=definition),
).dict()
seconds = time.perf_counter() - t
columns = {}
for m in result["metrics"]:
    config = m["config"]
    if config.get("type", "").endswith("ValueDrift"):
        value = m["value"]
        drifted = bool(value >= config["threshold"])
        columns[config["column"]] = [config["method"], float(value), drifted]
print(json.dumps({"import_s": imported, "drift_s": seconds, "columns": columns,
                  "peak_mb": peak_mb()}))
"""
)

SAME_TEST = {
    "wasserstein": "Wasserstein distance (normed)",
    "jensen_shannon": "Jensen-Shannon distance",
}


def run(python: str, code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ESTEIRA_"))}
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env,
                         check=False)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{python} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", default=os.environ.get("EVIDENTLY_PYTHON", ""))
    args = parser.parse_args()
    if not args.evidently_python or not Path(args.evidently_python).exists():
        raise SystemExit(__doc__)
    sys.path.insert(0, str(REPO / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "flight_delays"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
        from esteira import load_project

        print("preparing the features of 2013-01..2013-08 (each month validated in order) ...")
        project = load_project(root)
        features = run_pipeline(project, "train", {"end": "2013-08", "months": 8}, until="features")
        data = features.output("features")
        from flight_delays.features import CATEGORICAL, NUMERIC

        reference = data[data.batch <= "2013-03"]
        current = data[data.batch.between("2013-06", "2013-08")]
        ref_path, cur_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        reference.to_parquet(ref_path)
        current.to_parquet(cur_path)
        ours = run(sys.executable, ESTEIRA, str(ref_path), str(cur_path),
                   json.dumps(CATEGORICAL + NUMERIC))  # fmt: skip
        theirs = run(args.evidently_python, EVIDENTLY, str(ref_path), str(cur_path),
                     json.dumps(NUMERIC), json.dumps(CATEGORICAL))  # fmt: skip

    print(f"\nreference {len(reference):,} rows (Jan-Mar), current {len(current):,} rows "
          f"(Jun-Aug), {len(CATEGORICAL + NUMERIC)} columns\n")  # fmt: skip
    print(f"{'':34}{'esteira':>12}{'Evidently':>12}{'ratio':>9}")
    ours_total = ours["drift_s"] + ours["profile_s"]
    for label, a, b in (
        ("import (s)", ours["import_s"], theirs["import_s"]),
        ("drift, reference profiled (s)", ours["drift_s"], theirs["drift_s"]),
        ("drift + profiling the ref. (s)", ours_total, theirs["drift_s"]),
        ("peak memory (MB)", ours["peak_mb"], theirs["peak_mb"]),
    ):
        print(f"{label:<34}{a:>12.3f}{b:>12.3f}{b / a:>8.1f}x")
    print("\nverdicts where both use the same test:")
    same = agree = 0
    for column, (test, value, drifted) in ours["columns"].items():
        their = theirs["columns"].get(column)
        if their is None or SAME_TEST.get(test) != their[0]:
            continue
        same += 1
        agree += drifted == their[2]
        mark = "same" if drifted == their[2] else "DIFFERENT"
        print(
            f"  {column:<12}{test:<16} esteira {value:8.4f} {'drift' if drifted else 'ok':>5}"
            f"   Evidently {their[1]:8.4f} {'drift' if their[2] else 'ok':>5}   {mark}"
        )
    print(
        f"\nsame verdict on {agree} of {same} columns; "
        f"{ours_total and theirs['drift_s'] / ours_total:.1f}x faster including profiling"
    )


if __name__ == "__main__":
    main()
