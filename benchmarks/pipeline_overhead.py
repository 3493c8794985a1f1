"""Runner overhead and cache figures, esteira side by side with the alternative in one run.

    python benchmarks/pipeline_overhead.py [--steps 100] [--repeat 3]

1. `esteira --help` vs a bare Python start (and `import mlflow`, which the CLI avoids).
2. A chain of N no-op steps: plain function calls vs esteira's runner without MLflow
   logging, with a metric logged per step, and fully cached.
3. The reference pipeline (flight_delays, 2013-01..2013-03): cold vs fully cached rerun,
   as a user runs them (`esteira run` processes).
4. Logging + registering a model: esteira's `log_model` vs MLflow's defaults.

Metadata queries with a long history, on SQLite and PostgreSQL: benchmarks/metadata.py.

The machine is shared and noisy: read the ratios, not single absolute times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from esteira.pipelines.runner import run_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "flight_delays"


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def process(*args: str, cwd: Path | None = None) -> Callable[[], None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ESTEIRA_"))}
    return lambda: subprocess.run(args, check=True, capture_output=True, cwd=cwd, env=env)


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<52} {seconds * 1000:>10.1f} ms  {note}")


def cli_startup(repeat: int) -> None:
    print("\n1. CLI start-up (median of", repeat, "runs)")
    py = median_time(process(sys.executable, "-c", "pass"), repeat)
    help_ = median_time(process(sys.executable, "-m", "esteira.cli", "--help"), repeat)
    mlflow = median_time(process(sys.executable, "-c", "import mlflow"), max(1, repeat // 2))
    row("python -c pass", py)
    row("esteira --help", help_, f"target < 300 ms; {help_ / py:.1f}x a bare Python start")
    row("python -c 'import mlflow' (what --help avoids)", mlflow, f"{mlflow / help_:.1f}x --help")


CHAIN = """
from esteira import pipeline, step

STEPS = {steps}
LOG = {log}


def make(i):
    if i == 0:
        @step(name="s0")
        def first(ctx):
            return 0
        return first

    @step(name=f"s{{i}}", inputs={{"prev": f"s{{i - 1}}"}})
    def link(ctx, prev):
        if LOG:
            ctx.log_metrics({{f"value_{{i}}": prev + 1}})
        return prev + 1
    return link


chain = pipeline("chain", [make(i) for i in range(STEPS)])
"""


def runner_overhead(steps: int, repeat: int) -> None:
    print(f"\n2. Runner overhead: a chain of {steps} no-op steps (median of {repeat})")
    sys.path.insert(0, str(REPO / "src"))
    from esteira import load_project

    def plain() -> None:
        value = 0
        for _ in range(1, steps):
            value = (lambda prev: prev + 1)(value)

    baseline = median_time(plain, repeat)
    results: dict[str, float] = {}
    for label, log, cached in (
        ("esteira, no MLflow logging", False, False),
        ("esteira, one metric logged to MLflow per step", True, False),
        ("esteira, fully cached rerun", False, True),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "pipelines.py").write_text(CHAIN.format(steps=steps, log=log))
            project = load_project(root)
            run_pipeline(project, "chain")  # warm-up: creates the stores (and MLflow's tables)

            def once(project=project, cached=cached) -> None:
                run_pipeline(project, "chain", use_cache=cached)

            results[label] = median_time(once, repeat)
    row("plain Python function calls", baseline)
    for label, seconds in results.items():
        per_step = (seconds - baseline) / steps
        row(label, seconds, f"{per_step * 1000:.2f} ms/step")
    print("  target: < 5 ms/step without MLflow calls")


def reference_pipeline() -> None:
    print("\n3. Reference pipeline flight_delays 2013-01..2013-03, as `esteira run` processes")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "flight_delays"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
        cmd = (sys.executable, "-m", "esteira.cli", "run", "train", "--project", str(root))
        cold = median_time(process(*cmd), 1)
        cached = median_time(process(*cmd), 3)
    row("cold run (empty stores)", cold)
    row("fully cached rerun", cached, f"target < 2 s; {cold / cached:.1f}x faster than cold")


MODEL = """
import sys, time
from pathlib import Path
import numpy as np, pandas as pd
import mlflow, mlflow.sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
sys.path.insert(0, {src!r})
from esteira.tracking import Tracker, checked_trusted_types
from esteira.config import DEFAULT_TRUSTED_TYPES

rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(2000, 8)), columns=[f"f{{i}}" for i in range(8)])
y = (X.f0 + rng.normal(size=2000) > 0).astype(int)
model = HistGradientBoostingClassifier(max_iter=50).fit(X, y)
tracker = Tracker({uri!r}, {uri!r}, "bench", Path({art!r}), DEFAULT_TRUSTED_TYPES)
exp = tracker.experiment_id
mlflow.set_experiment(experiment_id=exp)
example = X.head(5)

def esteira_way():
    run = tracker.start_run("esteira", {{}})
    tracker.log_model(run, model, "bench_esteira", example, "predict_proba")
    tracker.end_run(run, "completed")

trusted = checked_trusted_types(model, DEFAULT_TRUSTED_TYPES)

def mlflow_defaults():
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", input_example=example,
                                 registered_model_name="bench_mlflow", skops_trusted_types=trusted)

for name, fn in (("esteira", esteira_way), ("mlflow", mlflow_defaults)):
    fn()  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    print(name, sorted(times)[1])
"""


def model_logging() -> None:
    print("\n4. Log + register a HistGradientBoosting model (median of 3, after a warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        code = MODEL.format(
            src=str(REPO / "src"), uri=f"sqlite:///{tmp}/mlflow.db", art=f"{tmp}/artifacts"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp
        ).stdout
    times = dict(line.split() for line in out.splitlines() if line.count(" ") == 1)
    ours, theirs = float(times["esteira"]), float(times["mlflow"])
    row("esteira log_model (requirements pinned, signature)", ours, "target < 2 s")
    row("mlflow.sklearn.log_model, defaults", theirs, f"{theirs / ours:.1f}x esteira")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true", help="skip part 3 (slowest)")
    args = parser.parse_args()
    cli_startup(max(args.repeat, 5))
    runner_overhead(args.steps, args.repeat)
    if not args.skip_reference:
        reference_pipeline()
    model_logging()


if __name__ == "__main__":
    main()
