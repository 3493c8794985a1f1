"""What the checks of `esteira ci` look at and what they return: the project's pipelines
run for CI (once, and a second time for the checks that compare two runs), the models they
registered, and each check's result.

The evidence is gathered on first use, always without the cache, with the parameters of
`[ci] params`, in the throwaway home the battery set up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError, StepFailed

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from esteira.metrics import Scores
    from esteira.models import LoadedModel
    from esteira.pipelines.runner import RunResult
    from esteira.project import Project

NO_MODEL = "no registered model"


@dataclass
class CheckResult:
    name: str
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    skipped: bool = False
    """Nothing to check here (the reason says why): not a failure, and not shown as a pass."""

    @classmethod
    def skip(cls, name: str, reason: str, evidence: dict[str, Any] | None = None) -> CheckResult:
        return cls(name, True, reason, evidence or {}, skipped=True)

    @property
    def verdict(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "FAILED"


@dataclass
class PipelineOutcome:
    """One CI run of a pipeline: its result, or the step that failed and why."""

    pipeline: str
    params: dict[str, Any]
    run_id: str = ""
    result: RunResult | None = None
    failed_step: str = ""
    error: str = ""
    missing_outputs: list[str] = field(default_factory=list)
    """The declared outputs the failed step did not return, when that is why it failed."""

    def describe(self) -> str:
        where = f"step '{self.failed_step}'" if self.failed_step else "before any step"
        return f"pipeline '{self.pipeline}' failed at {where}: {self.error}"


@dataclass
class Trained:
    """The model a pipeline's CI run registered, with the data it is judged on."""

    pipeline: str
    model: LoadedModel
    test_set: pd.DataFrame
    reference: pd.DataFrame
    """The rows the baseline learns from: the run's `train_set`, else its `test_set`."""

    @property
    def label(self) -> str:
        return f"{self.model.name}/{self.model.version}"

    @cached_property
    def predictions(self) -> np.ndarray:
        return predictions_on(self.model, self.test_set)

    @cached_property
    def scores(self) -> Scores:
        from esteira.metrics import Scores

        return Scores.of(self.model.task, self.predictions, self.model.classes)


class Evidence:
    """What the checks look at, gathered when a check first asks for it."""

    def __init__(self, project: Project, environ: Mapping[str, str]) -> None:
        self.project = project
        self.environ = dict(environ)

    @property
    def root(self) -> Path:
        return self.project.root

    @cached_property
    def runs(self) -> dict[str, PipelineOutcome]:
        _ = self.tables_before_runs
        return {name: run_for_ci(self.project, name) for name in sorted(self.project.pipelines)}

    @cached_property
    def tables_before_runs(self) -> set[str]:
        """Lake tables that were there before the pipelines ran (the project's unit tests
        may write some in the throwaway home): no pipeline wrote them."""
        return set(self.project.lake.tables())

    @cached_property
    def reruns(self) -> dict[str, PipelineOutcome]:
        """The pipelines that completed, run again with the same params and no cache, for
        the checks that compare two runs (`reproducible`, `stable_schemas`)."""
        return {name: run_for_ci(self.project, name) for name, o in self.runs.items() if o.result}

    @cached_property
    def trained(self) -> dict[str, Trained]:
        """pipeline -> the model its first run registered, for runs that registered one."""
        found = {name: trained_by(self.project, o) for name, o in self.runs.items() if o.result}
        return {name: t for name, t in found.items() if t is not None}


def run_for_ci(project: Project, pipeline: str) -> PipelineOutcome:
    from esteira.pipelines.runner import run_pipeline
    from esteira.pipelines.step import OutputsMismatch

    params = project.settings.ci.params.get(pipeline, {})
    try:
        result = run_pipeline(project, pipeline, params, use_cache=False, trigger="ci")
    except StepFailed as e:
        missing = e.error.missing if isinstance(e.error, OutputsMismatch) else []
        error = first_line(e.error)
        return PipelineOutcome(pipeline, params, e.run_id, None, e.step, error, missing)
    except EsteiraError as e:
        return PipelineOutcome(pipeline, params, error=first_line(e))
    return PipelineOutcome(pipeline, params, result.run_id, result)


def trained_by(project: Project, outcome: PipelineOutcome) -> Trained | None:
    """The model a completed run registered (outputs `registered` and `test_set`), loaded."""
    from esteira.models import load
    from esteira.steps import registered_version

    result = outcome.result
    if result is None or not {"registered", "test_set"} <= set(result.outputs):
        return None
    name, version = registered_version("register", result.output("registered"))
    test_set = result.output("test_set")
    reference = result.output("train_set") if "train_set" in result.outputs else test_set
    return Trained(outcome.pipeline, load(project, name, version), test_set, reference)


def predictions_on(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_raw(frame[model.input_names])


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


Verdict = tuple[bool, str, dict[str, Any]]


def failed_pipelines(e: Evidence) -> list[str]:
    """A pipeline that failed cannot be judged, which fails a check that judges its
    results too (its cause is in pipelines_run)."""
    return [not_judged(o.pipeline) for o in e.runs.values() if o.result is None]


def not_judged(pipeline: str) -> str:
    return f"{pipeline}: not judged, the pipeline failed (see pipelines_run)"


def each_model(
    e: Evidence, name: str, judge: Callable[[Evidence, Trained], Verdict | str]
) -> CheckResult:
    """`judge` on the model of every pipeline that registered one. A judge returns a str
    where the check does not apply to a model (why); it is skipped where it applies to none."""
    problems = failed_pipelines(e)
    verdicts: dict[str, dict[str, Any]] = {}
    not_applicable: dict[str, dict[str, Any]] = {}
    for pipeline, t in e.trained.items():
        found = judge(e, t)
        if isinstance(found, str):
            not_applicable[pipeline] = {"model": t.label, "skipped": found}
            continue
        passed, reason, figures = found
        verdicts[pipeline] = {"model": t.label, "passed": passed, "reason": reason, **figures}
    evidence = verdicts | not_applicable
    if not verdicts and not problems:
        if not_applicable:
            why = "; ".join(f"{p}: {v['skipped']}" for p, v in not_applicable.items())
            return CheckResult.skip(name, why, evidence)
        return CheckResult(name, True, NO_MODEL)
    failed = problems + [f"{p}: {v['reason']}" for p, v in verdicts.items() if not v["passed"]]
    told = failed or [f"{p}: {v['reason']}" for p, v in verdicts.items()]
    return CheckResult(name, not failed, "; ".join(told), evidence)
