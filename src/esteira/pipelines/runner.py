"""The local runner: executes a pipeline's steps in order, skipping cache hits (see
`cache`), so a rerun after a failure resumes at the failed step. Every step run is recorded
in the metadata store as it starts and ends. Nothing here imports MLflow: the tracker does,
on the first call that has something to track.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esteira.artifacts import ArtifactRef
from esteira.artifacts import artifact_ref as _ref
from esteira.errors import NotFound, PipelineDefinitionError, StepFailed
from esteira.metadata import (
    ModelVersionRecord,
    PipelineRun,
    StepIO,
    StepRun,
    TableAccess,
    utcnow,
)
from esteira.pipelines.cache import cache_key, settings_read, valid_hit
from esteira.pipelines.context import Context, StepRecord
from esteira.pipelines.dag import Pipeline
from esteira.pipelines.params import resolve_params
from esteira.pipelines.step import Step, split_outputs
from esteira.provenance import executor, git_commit
from esteira.runtime import thread_budget, training_threads

if TYPE_CHECKING:
    from esteira.project import Project


@dataclass(frozen=True)
class StepEvent:
    step: str
    status: str  # running | completed | cached | failed
    index: int
    total: int
    duration_s: float = 0.0


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    status: str
    step_status: dict[str, str]
    outputs: dict[str, ArtifactRef]
    mlflow_run_id: str | None
    duration_s: float
    _load: Callable[[ArtifactRef], Any] = field(repr=False)

    def output(self, name: str) -> Any:
        """Load an output of this run from the artifact store."""
        if name not in self.outputs:
            raise NotFound(
                f"run {self.run_id} has no output '{name}'; it has {sorted(self.outputs)}"
            )
        return self._load(self.outputs[name])


def run_pipeline(
    project: Project,
    pipeline: str,
    params: Mapping[str, Any] | None = None,
    only: str | None = None,
    use_cache: bool = True,
    trigger: str = "manual",
    trigger_reason: str = "",
    on_event: Callable[[StepEvent], None] | None = None,
    until: str | None = None,
) -> RunResult:
    """Run a project's pipeline (or `only` one step, or the steps `until` one needs);
    parameters: code defaults < esteira.toml < `params`."""
    p = project.pipeline(pipeline)
    resolved = resolve_params(p, project.settings.pipeline_params.get(pipeline, {}), params or {})
    return Runner(project, on_event).run(
        p, resolved, only, use_cache, trigger, trigger_reason, until
    )


class Runner:
    def _close_dead_runs(self) -> None:
        """Runs killed hard stay 'running' until a later run on this host closes them, here
        and in MLflow."""
        for dead in self.project.metadata.close_dead_runs():
            try:
                if dead.mlflow_run_id:
                    self.project.tracker.end_run(dead.mlflow_run_id, "failed")
                self._mark_orphans(dead)
            except Exception as e:  # MLflow's run may be gone: the record is closed
                logging.getLogger("esteira").warning(
                    "could not close MLflow's side of dead run %s: %s", dead.id, e
                )

    def _mark_orphans(self, dead: PipelineRun) -> None:
        """Versions the dead run registered and never recorded are never promoted."""
        from esteira.registry import Registry

        recorded = {(m.name, m.version) for step in dead.steps for m in step.models}
        why = f"registered by run {dead.id[:12]}, whose process died before recording it"
        for orphan in Registry(self.project).mark_orphans(dead.id, recorded, why):
            logging.getLogger("esteira").warning("model version %s is orphaned: %s", orphan, why)

    def __init__(
        self, project: Project, on_event: Callable[[StepEvent], None] | None = None
    ) -> None:
        self.project = project
        self.on_event = on_event or (lambda event: None)

    def run(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        only: str | None = None,
        use_cache: bool = True,
        trigger: str = "manual",
        trigger_reason: str = "",
        until: str | None = None,
    ) -> RunResult:
        if only and until:
            raise PipelineDefinitionError("give --only or --until, not both")
        if only:
            steps = [pipeline.step(only)]
        elif until:
            steps = pipeline.up_to(pipeline.step(until))
        else:
            steps = pipeline.steps
        started = time.perf_counter()
        self._close_dead_runs()
        self.project.artifacts.prune_temporary()  # what writers killed mid-write left
        record = PipelineRun(
            id=uuid.uuid4().hex,
            project=self.project.name,
            pipeline=pipeline.name,
            status="running",
            trigger=trigger,
            trigger_reason=trigger_reason,
            executor=executor(),
            pid=os.getpid(),
            code_version=pipeline.code_version,
            git_commit=git_commit(self.project.root),
            params=_jsonable(params),
            only_step=only,
            until_step=until,
        )
        self.project.metadata.add(record)
        state = _RunState(self.project, pipeline, record, params, steps)
        status, error = "failed", None
        try:
            for index, s in enumerate(steps):
                self._run_step(state, s, index, use_cache, from_history=only is not None)
            status = "completed"
        except StepFailed as e:
            error = str(e)
            raise
        except BaseException as e:  # interrupted: record it, then let it go on
            error = f"interrupted: {type(e).__name__}"
            raise
        finally:
            state.finish(status, error, time.perf_counter() - started)
        return RunResult(
            record.id,
            pipeline.name,
            status,
            state.step_status,
            state.refs,
            state.mlflow_run_id,
            time.perf_counter() - started,
            self.project.artifacts.load,
        )

    def _run_step(
        self, state: _RunState, s: Step, index: int, use_cache: bool, from_history: bool
    ) -> None:
        total = len(state.steps)
        inputs = {
            arg: state.input_ref(name, from_history)
            for arg, name in state.pipeline.data_inputs(s).items()
        }
        params = {p: state.params[p] for p in state.pipeline.param_names(s)}
        key = cache_key(s, params, inputs, settings_read(s, self.project.settings))
        step_run = StepRun(
            id=uuid.uuid4().hex,
            pipeline_run_id=state.record.id,
            seq=index,
            step=s.name,
            status="running",
            code_hash=s.code_hash,
            cache_key=key,
            params=_jsonable(params),
        )
        hit = valid_hit(self.project, key) if use_cache else None
        if hit is not None:
            state.reuse(step_run, hit, inputs)
            self.on_event(StepEvent(s.name, "cached", index, total))
            return
        self.project.metadata.add(step_run)
        self.on_event(StepEvent(s.name, "running", index, total))
        started = time.perf_counter()
        ctx = state.context(step_run)
        kwargs: dict[str, Any] = {
            arg: state.value(name) for arg, name in state.pipeline.data_inputs(s).items()
        }
        kwargs.update(params)
        if s.wants_context:
            kwargs["ctx"] = ctx
        try:
            with thread_budget(training_threads(self.project.settings.runtime.threads)):
                outputs = split_outputs(s, s.func(**kwargs))
            refs = {name: self.project.artifacts.save(value) for name, value in outputs.items()}
        except BaseException as e:
            step_run.status, step_run.error = "failed", traceback.format_exc()
            state.close_step(step_run, ctx.record, inputs, {}, time.perf_counter() - started)
            self.on_event(StepEvent(s.name, "failed", index, total, time.perf_counter() - started))
            if isinstance(e, Exception):
                raise StepFailed(s.name, state.record.id, e) from e
            raise
        state.keep(outputs, refs)
        step_run.status = "completed"
        state.close_step(step_run, ctx.record, inputs, refs, time.perf_counter() - started)
        self.on_event(StepEvent(s.name, "completed", index, total, time.perf_counter() - started))


class _RunState:
    """What one pipeline run holds while it executes."""

    def __init__(
        self,
        project: Project,
        pipeline: Pipeline,
        record: PipelineRun,
        params: Mapping[str, Any],
        steps: list[Step],
    ) -> None:
        self.project = project
        self.pipeline = pipeline
        self.record = record
        self.params = dict(params)
        self.steps = steps
        self.refs: dict[str, ArtifactRef] = {}
        self.step_status: dict[str, str] = {}
        self.tables_read: dict[str, int] = {}
        self.mlflow_run_id: str | None = None
        self._values: dict[str, Any] = {}  # outputs kept in memory while a later step needs them
        self._pending_uses = Counter(
            name for s in steps for name in pipeline.data_inputs(s).values()
        )
        self._cached_metrics: dict[str, float] = {}
        self._logged_metrics: set[str] = set()

    # inputs --------------------------------------------------------------------------

    def input_ref(self, name: str, from_history: bool) -> ArtifactRef:
        if name in self.refs:
            return self.refs[name]
        if not from_history:  # cannot happen: topological order produces inputs first
            raise AssertionError(f"input {name!r} read before it was produced")
        producer = self.pipeline.producer[name].name
        io = self.project.metadata.latest_output(self.pipeline.name, producer, name)
        if io is None or not _ref(io).exists():
            raise NotFound(
                f"no completed run of pipeline '{self.pipeline.name}' has produced '{name}' "
                f"(output of step '{producer}'); run the pipeline first, or up to that step "
                f"with --only {producer}"
            )
        self.refs[name] = _ref(io)
        return self.refs[name]

    def value(self, name: str) -> Any:
        """An input's value: kept in memory since its step ran, or loaded from the store."""
        if name in self._values:
            value = self._values[name]
        else:
            value = self.project.artifacts.load(self.refs[name])
        self._pending_uses[name] -= 1
        if self._pending_uses[name] <= 0:
            self._values.pop(name, None)
        else:
            self._values[name] = value
        return value

    def keep(self, outputs: Mapping[str, Any], refs: Mapping[str, ArtifactRef]) -> None:
        self.refs.update(refs)
        self._values.update({n: v for n, v in outputs.items() if self._pending_uses[n] > 0})

    # records -------------------------------------------------------------------------

    def context(self, step_run: StepRun) -> Context:
        return Context(
            self.project,
            self.pipeline.name,
            step_run.step,
            self.record.id,
            step_run.id,
            self.mlflow_run,
            self.lineage_tags,
        )

    def reuse(self, step_run: StepRun, hit: StepRun, inputs: Mapping[str, ArtifactRef]) -> None:
        """Record a cache hit as a step run of this run that points at the original."""
        step_run.status = "cached"
        step_run.cached_from = hit.id
        step_run.mlflow_run_id = hit.mlflow_run_id
        step_run.metrics = dict(hit.metrics)
        step_run.started_at = step_run.ended_at = utcnow()
        step_run.duration_s = 0.0
        step_run.io = _io_records(inputs, "in") + [
            StepIO(direction="out", name=o.name, uri=o.uri, hash=o.hash, kind=o.kind, size=o.size)
            for o in hit.outputs()
        ]
        step_run.tables = [
            TableAccess(mode=t.mode, table=t.table, version=t.version) for t in hit.tables
        ]
        self.project.metadata.add(step_run)
        self.refs.update({o.name: _ref(o) for o in hit.outputs()})
        self.tables_read.update({t.table: t.version for t in hit.tables if t.mode == "read"})
        self._cached_metrics.update(hit.metrics)
        self.step_status[step_run.step] = "cached"

    def close_step(
        self,
        step_run: StepRun,
        done: StepRecord,
        inputs: Mapping[str, ArtifactRef],
        outputs: Mapping[str, ArtifactRef],
        duration: float,
    ) -> None:
        if done.metrics or done.params:
            self.project.tracker.log(self.mlflow_run(), done.params, done.metrics)
            self._logged_metrics |= set(done.metrics)
        children = [
            *_io_records(inputs, "in"),
            *_io_records({**outputs, **done.reports}, "out"),
            *(TableAccess(mode=m, table=t, version=v) for m, t, v in done.tables),
            *(
                ModelVersionRecord(
                    name=m.name, version=m.version, model_uri=m.model_uri, mlflow_run_id=m.run_id
                )
                for m in done.models
                if m.name
            ),
        ]
        for child in children:
            child.step_run_id = step_run.id
        self.project.metadata.update(
            StepRun,
            step_run.id,
            children,
            status=step_run.status,
            error=step_run.error,
            ended_at=utcnow(),
            duration_s=duration,
            metrics=done.metrics,
            params={**step_run.params, **_jsonable(done.params)},
            mlflow_run_id=self.mlflow_run_id,
        )
        self.tables_read.update({t: v for m, t, v in done.tables if m == "read"})
        self.step_status[step_run.step] = step_run.status

    def mlflow_run(self) -> str:
        if self.mlflow_run_id is None:
            tracker = self.project.tracker
            self.mlflow_run_id = tracker.start_run(
                f"{self.pipeline.name}-{self.record.id[:8]}", self.lineage_tags()
            )
            tracker.log(self.mlflow_run_id, params=self.params)
            self.record.mlflow_run_id = self.mlflow_run_id
            self.project.metadata.update(
                PipelineRun, self.record.id, mlflow_run_id=self.mlflow_run_id
            )
        return self.mlflow_run_id

    def lineage_tags(self) -> dict[str, str]:
        from esteira.registry import RUN_TAG

        tags = {
            "esteira.project": self.project.name,
            "esteira.pipeline": self.pipeline.name,
            RUN_TAG: self.record.id,
            "esteira.code_version": self.record.code_version,
            "esteira.git_commit": self.record.git_commit,
            "esteira.executor": self.record.executor,
            "esteira.trigger": self.record.trigger,
        }
        if self.project.settings.release:  # the code came from a deployed release
            tags["esteira.release"] = self.project.settings.release
        tags |= {f"esteira.data.{t}.version": str(v) for t, v in sorted(self.tables_read.items())}
        return tags

    def finish(self, status: str, error: str | None, duration: float) -> None:
        self.record.status = status
        if self.mlflow_run_id is not None:
            cached = {
                k: v for k, v in self._cached_metrics.items() if k not in self._logged_metrics
            }
            self.project.tracker.log(self.mlflow_run_id, metrics=cached, tags=self.lineage_tags())
            self.project.tracker.end_run(self.mlflow_run_id, status)
        self.project.metadata.update(
            PipelineRun,
            self.record.id,
            status=status,
            error=error,
            ended_at=utcnow(),
            duration_s=duration,
        )


def _io_records(refs: Mapping[str, ArtifactRef], direction: str) -> list[StepIO]:
    return [
        StepIO(direction=direction, name=name, uri=r.uri, hash=r.hash, kind=r.kind, size=r.size)
        for name, r in refs.items()
    ]


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(values), default=repr))
