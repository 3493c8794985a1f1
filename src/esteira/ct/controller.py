"""The CT controller: looks at a model's state, asks its triggers, and when one fires runs
the training pipeline (whose steps validate the data, train, gate and promote).

At most one CT run per model at a time, across processes: an exclusive lock on a file in
the project's home, released by the OS even if the holder is killed. A run stopped midway
(SIGTERM, a crash) is recorded as interrupted and resumed first at the next start; the
pipeline's cache makes that resume cheap.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from esteira.batches import as_label, period_of
from esteira.ct.triggers import CTState, Fire, Trigger, evaluate, from_config, naive_utc
from esteira.errors import ConfigError, EsteiraError, StepFailed
from esteira.metadata import CTRun

if TYPE_CHECKING:
    from esteira.project import Project


class Busy(EsteiraError):
    """Another CT run of the same model holds the lock."""


@contextmanager
def ct_lock(project: Project, model: str) -> Iterator[None]:
    locks = project.settings.home / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    busy = f"a CT run of '{model}' is already in progress"
    with open(locks / f"ct-{model}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(busy) from None
        try:
            # Controllers on other hosts share the metadata store, not this file.
            with project.metadata.lock(f"ct-{model}") as held:
                if not held:
                    raise Busy(f"{busy} on another host")
                yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Controller:
    def __init__(
        self,
        project: Project,
        triggers: list[Trigger] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        config = project.settings.ct
        if not config.model:
            raise ConfigError("set [ct] model (and pipeline, label, ...) in esteira.toml")
        self.project = project
        self.config = config
        self.model = config.model
        self.triggers = (
            triggers if triggers is not None else from_config(config.triggers, config.metric)
        )
        self.log = log

    # state ---------------------------------------------------------------------------

    def state(self, now: datetime | None = None, newest_batch: str | None = None) -> CTState:
        from esteira.registry import CHAMPION, RUN_TAG, Registry

        champion = (
            Registry(self.project).by_alias(self.model, CHAMPION) if self._registered() else None
        )
        trained_batch, trained_at = None, None
        if champion is not None:
            run_id = champion.tags.get(RUN_TAG, "")
            if run_id:
                run = self.project.metadata.run(run_id)
                trained = run.params.get(self.config.batch_param)
                trained_batch = None if trained is None else as_label(trained)
                trained_at = run.started_at
        tried = self._last_finished()
        if tried is not None:  # a refused challenger was trained all the same
            times = [t for t in (trained_at, tried.at) if t is not None]
            trained_at = max(times, key=naive_utc)
        monitoring = self.project.metadata.latest_monitoring(self.model)
        if (
            monitoring is not None
            and champion is not None
            and monitoring.version != champion.version
        ):
            monitoring = None  # about a former champion
        return CTState(
            model=self.model,
            now=now or datetime.now(UTC).replace(tzinfo=None),
            champion=champion.version if champion else None,
            last_training_at=trained_at,
            trained_batch=trained_batch,
            newest_batch=newest_batch if newest_batch is not None else self._newest_batch(),
            monitoring=monitoring,
            batch_period=self.config.batch_period,
            tried_batch=as_label(tried.batch) if tried is not None and tried.batch else None,
        )

    def check(self, now: datetime | None = None) -> list[Fire]:
        return evaluate(self.triggers, self.state(now))

    # acting --------------------------------------------------------------------------

    def run(
        self, fires: list[Fire], batch: str | None = None, params: dict[str, Any] | None = None
    ) -> CTRun:
        """Run the training pipeline for `fires` (the first names the trigger), under the lock."""
        from esteira.pipelines.runner import run_pipeline
        from esteira.registry import Registry

        batch = batch or self._newest_batch()
        params = dict(params or {})
        if batch:
            params.setdefault(self.config.batch_param, self.batch_value(batch))
        reason = "; ".join(f"{f.trigger}: {f.reason}" for f in fires)
        with ct_lock(self.project, self.model):
            self._close_dead_ct_runs()
            registry = Registry(self.project)
            before = self._champion(registry)
            record = CTRun(model=self.model, trigger=fires[0].trigger, reason=reason,
                           batch=batch, status="running", champion_before=before)  # fmt: skip
            self.project.metadata.add(record)
            self.log(f"CT run of {self.model}: {reason}")
            status, error, run_id = "failed", None, None
            try:
                result = run_pipeline(
                    self.project,
                    self.config.pipeline,
                    params,
                    trigger=fires[0].trigger,
                    trigger_reason=reason,
                )
                status, run_id = "completed", result.run_id
            except StepFailed as e:
                error, run_id = str(e), e.run_id
            except BaseException as e:
                status, error = "interrupted", f"interrupted: {type(e).__name__}"
                raise
            finally:
                outcome = {
                    "status": status,
                    "error": error,
                    "pipeline_run_id": run_id,
                    "champion_after": self._champion(registry),
                }
                self.project.metadata.update(CTRun, record.id, **outcome)
                for name, value in outcome.items():
                    setattr(record, name, value)
            after = record.champion_after
            self.log(f"CT run of {self.model} {status}; champion {before or '-'} → {after or '-'}")
            if error:
                self.log(f"  why: {error.strip().splitlines()[0]}")
        return record

    def tick(self, now: datetime | None = None) -> CTRun | None:
        """Evaluate the triggers once; run if any fires (and no run is in progress)."""
        interrupted = self._interrupted()
        fires = (
            [Fire("resume", f"CT run {interrupted.id} was interrupted")]
            if interrupted is not None
            else self.check(now)
        )
        if not fires:
            return None
        try:
            return self.run(fires, batch=interrupted.batch if interrupted else None)
        except Busy as e:
            self.log(str(e))
            return None

    def serve(self, stop: threading.Event, interval_s: float | None = None) -> None:
        """Tick every `interval_s` until `stop` is set."""
        interval = interval_s or self.config.interval_s
        self.log(f"CT controller for {self.model}: checking every {interval:g} s")
        while not stop.is_set():
            started = time.monotonic()
            self.tick()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        self.log("CT controller stopped")

    # helpers -------------------------------------------------------------------------

    def _registered(self) -> bool:
        from esteira.registry import Registry

        return self.model in Registry(self.project).models()

    def _champion(self, registry: Any) -> str | None:
        from esteira.registry import CHAMPION

        if not self._registered():
            return None
        found = registry.by_alias(self.model, CHAMPION)
        return found.version if found else None

    def batch_value(self, batch: str) -> Any:
        """`batch` as the pipeline's batch parameter: typed like its default (7, not "7",
        for a pipeline whose `end` defaults to an integer)."""
        from esteira.pipelines.params import parse_assignments

        pipeline = self.project.pipeline(self.config.pipeline)
        if self.config.batch_param not in pipeline.params:
            return batch  # the runner names the missing parameter
        return parse_assignments(pipeline, [f"{self.config.batch_param}={batch}"])[
            self.config.batch_param
        ]

    def _newest_batch(self) -> str | None:
        table, column = self.config.batch_table, self.config.batch_column
        if not table or not self.project.lake.exists(table):
            return None
        labels, _ = self.project.lake.read(table, columns=[column])
        present = labels[column].dropna().unique()
        return (
            period_of(present, self.config.batch_period).newest(present) if len(present) else None
        )

    def _close_dead_ct_runs(self) -> None:
        """With the lock held no CT run of this model is alive: one still 'running' was
        killed, and is recorded as interrupted (the next tick resumes it)."""
        for run in self.project.metadata.ct_runs(self.model, limit=5):
            if run.status == "running":
                died = "the CT process died during this run"
                self.project.metadata.update(CTRun, run.id, status="interrupted", error=died)

    def _last_finished(self) -> CTRun | None:
        """The latest CT run that ended, completed or failed (not one still to resume)."""
        runs = self.project.metadata.ct_runs(self.model, limit=20)
        return next((r for r in runs if r.status in ("completed", "failed")), None)

    def _interrupted(self) -> CTRun | None:
        runs = self.project.metadata.ct_runs(self.model, limit=1)
        return runs[0] if runs and runs[0].status in ("interrupted", "running") else None
