"""The compatibility gate: the challenger, loaded from the registry in a fresh process as a
server would load it (MLflow pyfunc, the service's threads set before anything loads),
predicts the input example it was logged with, consistent with its signature, within a
latency budget.

Latency is the median of many timed predictions after a few warm-up calls (at least
`MIN_CALLS` calls and `MIN_SECONDS`, at most `MAX_SECONDS` once `FEWEST_CALLS` are timed):
one slow call (a context switch, a collection) cannot fail a model. The budget is
`[gates] latency_budget_ms` when set, a serving objective; otherwise it is relative: the
fresh process may take at most `latency_budget_ratio` times what the same measurement takes
in the gating process, plus `latency_slack_ms`. Both run with `[runtime] serving_threads`.

The fresh process is started first (`start_compatibility`), so that it imports MLflow and
loads the model, seconds of work, while the gates score the test data; it times its calls
only once told to (`FreshProbe.result`), when the gating process is waiting, so scoring
cannot slow a timed call.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from esteira.config import GatesConfig
from esteira.validation.decision import Check, Evidence

if TYPE_CHECKING:
    from esteira.project import Project

WARMUP_CALLS = 3
MIN_CALLS = 21
MIN_SECONDS = 1.0
MAX_SECONDS = 10.0
FEWEST_CALLS = 5


def compatibility_gate(e: Evidence, config: GatesConfig) -> Check:
    if e.compatibility is None:
        return Check("compatibility", True, "not checked (check_compatibility = false)")
    c = e.compatibility
    if not c.get("ok"):
        return Check("compatibility", False, c.get("error", "failed"), c)
    took = f"predicts its example in {c['median_ms']:.1f} ms with {c['threads']} thread(s)"
    budget = latency_budget_ms(config, c.get("in_process_ms"))
    if budget is None:
        return Check("compatibility", False, f"{took}; no in-process time to compare with", c)
    if config.latency_budget_ms is not None:
        rule = "latency_budget_ms"
    else:
        rule = (
            f"{config.latency_budget_ratio:g}x its {c['in_process_ms']:.1f} ms in the gating "
            f"process + {config.latency_slack_ms:g} ms"
        )
    figures = c | {"budget_ms": budget}
    if c["median_ms"] > budget:
        return Check("compatibility", False, f"{took}, over the {budget:.4g} ms budget ({rule})",
                     figures)  # fmt: skip
    reason = f"loads from {c['uri']} in a fresh process and {took}, within {budget:.4g} ms ({rule})"
    return Check("compatibility", True, reason, figures)


def latency_budget_ms(config: GatesConfig, in_process_ms: float | None) -> float | None:
    """The most a fresh process may take: the absolute budget when set, else relative to the
    time in the gating process (None when that was not measured)."""
    if config.latency_budget_ms is not None:
        return config.latency_budget_ms
    if in_process_ms is None:
        return None
    return config.latency_budget_ratio * in_process_ms + config.latency_slack_ms


def latency_ms(timings_s: Sequence[float]) -> float:
    """The latency of a model from its timed calls: their median, in milliseconds. One
    slow call moves it by one rank at most, never to that call's time."""
    if not timings_s:
        raise ValueError("no timed calls")
    return statistics.median(timings_s) * 1000


def time_calls(
    call: Callable[[], object],
    warmup: int = WARMUP_CALLS,
    min_calls: int = MIN_CALLS,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
) -> list[float]:
    """Seconds taken by each timed call of `call`, after `warmup` untimed ones: at least
    `min_calls` calls over at least `min_seconds`; a slow model stops at `max_seconds` once
    `FEWEST_CALLS` are timed."""
    for _ in range(warmup):
        call()
    timings: list[float] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        call()
        timings.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        if len(timings) >= min_calls and elapsed >= min_seconds:
            return timings
        if elapsed >= max_seconds and len(timings) >= FEWEST_CALLS:
            return timings


def probe(
    uri: str, threads: int | None, loaded: Callable[[], object] | None = None
) -> dict[str, Any]:
    """Load `uri` as MLflow pyfunc (MLflow's URIs already set), predict its input example,
    check the output against the signature and time it, with `threads` (None: no limit).
    `loaded` is called once the model is loaded, before it predicts (to wait there)."""
    import mlflow
    import numpy as np
    from mlflow.models import Model

    from esteira.runtime import thread_budget

    try:
        local = mlflow.artifacts.download_artifacts(uri)
        meta = Model.load(local)
        example = meta.load_input_example(local)
        if example is None:
            raise ValueError("the model was logged without an input example")
        started = time.perf_counter()
        model = mlflow.pyfunc.load_model(local)
        load_s = time.perf_counter() - started
        if loaded is not None:
            loaded()
        with thread_budget(threads) if threads else nullcontext():
            out = model.predict(example)
            timings = time_calls(lambda: model.predict(example))
    except Exception as e:
        return {"ok": False, "uri": uri, "error": f"{type(e).__name__}: {e}"}
    values = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out)
    problems = []
    if len(values) != len(example):
        problems.append(f"{len(values)} predictions for {len(example)} rows")
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        problems.append("predictions are not all finite")
    elif values.dtype.kind == "O" and any(v is None or v != v for v in values.ravel()):
        problems.append("some predictions are missing")  # class labels: none may be empty
    spec = meta.signature.outputs.inputs[0] if meta.signature and meta.signature.outputs else None
    shape = getattr(spec, "shape", None)
    if (
        shape
        and len(shape) == values.ndim
        and any(a != -1 and a != b for a, b in zip(shape, values.shape, strict=True))
    ):
        problems.append(f"output shape {values.shape} does not match the signature {shape}")
    return {"ok": not problems, "error": "; ".join(problems), "uri": uri, "load_s": load_s,
            "median_ms": latency_ms(timings), "calls": len(timings), "rows": len(example),
            "threads": threads}  # fmt: skip


class FreshProbe:
    """`probe` in a new Python process, its thread settings in its environment from the
    start (as the service sets them before it loads a model); `env` adds variables. The
    process starts at once and imports and loads while the caller works; it predicts and
    times its calls only when `result` is asked for."""

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str,
        uri: str,
        threads: int | None,
        timeout_s: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from esteira.runtime import thread_env

        self.uri = uri
        self.timeout_s = timeout_s
        environ = {**os.environ, **(thread_env(threads) if threads else {}), **(env or {})}
        args = [tracking_uri, registry_uri, uri, str(threads or 0), WAIT]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "esteira.validation.compatibility", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )

    def result(self) -> dict[str, Any]:
        """Let the process predict and time its calls (it waits for this once loaded), and
        return what it found."""
        try:
            out, err = self._process.communicate("go\n", timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.cancel()
            return {"ok": False, "uri": self.uri,
                    "error": f"did not load and predict in {self.timeout_s:.0f} s"}  # fmt: skip
        lines = out.strip().splitlines()
        if self._process.returncode != 0 or not lines:
            return {"ok": False, "uri": self.uri, "error": err.strip()[-500:] or "no output"}
        return json.loads(lines[-1])

    def cancel(self) -> None:
        """Stop the process if it still runs (the caller failed before asking for it)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()


WAIT = "--wait"
"""Tells the fresh process to wait, once loaded, until its parent says go on stdin."""


def start_compatibility(project: Project, uri: str) -> FreshProbe:
    """The fresh process of the compatibility check of `uri`, started: it loads the model
    while the caller works (`check_compatibility(..., started=)` then finishes it)."""
    s = project.settings
    return FreshProbe(s.tracking_uri, s.registry_uri, uri, s.runtime.serving_threads)


def check_compatibility(
    project: Project, uri: str, config: GatesConfig, started: FreshProbe | None = None
) -> dict[str, Any]:
    """The gate's evidence: `uri` measured in a fresh process with the service's threads
    (`started` by `start_compatibility`, or now), and, for a relative budget, in this
    process the same way, after it."""
    threads = project.settings.runtime.serving_threads
    found = (started or start_compatibility(project, uri)).result()
    if found.get("ok") and config.latency_budget_ms is None:
        project.tracker.activate()
        here = probe(uri, threads)
        if not here.get("ok"):
            return {**found, "ok": False, "error": f"in the gating process: {here['error']}"}
        found["in_process_ms"] = here["median_ms"]
    return found


def main(argv: Sequence[str]) -> None:
    import mlflow

    tracking_uri, registry_uri, uri, threads = argv[:4]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    wait = (lambda: sys.stdin.readline()) if WAIT in argv[4:] else None
    print(json.dumps(probe(uri, int(threads) or None, wait)))


if __name__ == "__main__":
    main(sys.argv[1:])
