"""Batches fed through the CT loop one at a time, in simulated time: each lands and is
prepared (data validation included: a bad batch is quarantined, not trained on), is scored
by the champion trained before it (so no batch is scored by a model that saw it) and
monitored, then the triggers are asked at the batch's end and a retraining (gates and
promotion included) runs when one fires. Replay feeds the past this way once per policy;
the demo feeds it with the project's own triggers while a service answers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from esteira.batches import period_of
from esteira.ct.triggers import Fire, Trigger, evaluate
from esteira.errors import StepFailed
from esteira.validation.data import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from esteira.models import LoadedModel
    from esteira.project import Project
    from esteira.summaries.profile import Profile


@dataclass
class BatchRow:
    batch: str
    champion: str | None
    metric: float | None
    drift_share: float | None
    retrained: bool = False
    reason: str = ""
    champion_after: str | None = None
    quarantined: str = ""
    fired: list[str] = field(default_factory=list)
    """The triggers that fired at the batch's end."""
    failed: str = ""
    """Why the retraining they started failed (not a gate's refusal: the run itself)."""


PREPARED_LOOKBACK = 2000
"""The pipeline runs searched, newest first, for the run that prepared a batch."""


def prepared_batch(project: Project, batch: str) -> pd.DataFrame | None:
    """`batch`'s model inputs and label as `BatchFeed.feed` prepared them to monitor it
    (the `[ct] data_output` of its batch-only run), read back from that run; None when no
    completed run prepared it (never fed, or quarantined). ArtifactError when its
    artifact is gone from the store."""
    from esteira.monitoring.monitor import run_output

    ct = project.settings.ct
    for run in project.metadata.runs(ct.pipeline, limit=PREPARED_LOOKBACK):
        params = run.params
        if (
            run.status == "completed"
            and str(params.get(ct.batch_param)) == str(batch)  # stored typed: 7, "2013-04"
            and all(params.get(k) == v for k, v in ct.batch_only_params.items())
        ):
            return run_output(project, run.id, ct.data_output)
    return None


class BatchFeed:
    """Feeds `project`'s batches through its CT loop with `triggers`, from `first` on."""

    def __init__(self, project: Project, triggers: list[Trigger], first: str) -> None:
        from esteira.ct.controller import Controller
        from esteira.metrics import resolve_metric

        self.project = project
        self.triggers = triggers
        self.controller = Controller(project, triggers=triggers, log=lambda message: None)
        ct = project.settings.ct
        task = project.settings.model.task  # else known from the first monitoring record
        self.metric = resolve_metric(ct.metric, task) if task else ct.metric
        self.period = period_of([first], ct.batch_period)
        self.trained_at = self.period.start(first)
        self._models: dict[str, tuple[LoadedModel, Profile]] = {}  # champion -> model, reference

    def bootstrap(self, first: str) -> None:
        """The initial champion, trained on the batches before `first`."""
        before = self.period.previous(first)
        self.controller.run([Fire("bootstrap", f"initial champion, trained up to {before}")],
                            before)  # fmt: skip

    def feed(self, batch: str) -> BatchRow:
        """One batch through the loop; what happened to it."""
        from esteira.monitoring.monitor import monitor_batch
        from esteira.monitoring.performance import key_metric
        from esteira.pipelines.runner import run_pipeline

        project, ct, controller = self.project, self.project.settings.ct, self.controller
        state = controller.state(now=self.period.start(batch), newest_batch=batch)
        row = BatchRow(batch, state.champion, None, None)
        try:
            prepared = run_pipeline(
                project,
                ct.pipeline,
                {ct.batch_param: controller.batch_value(batch), **ct.batch_only_params},
                until=ct.data_output,
                trigger="replay",
                trigger_reason=f"prepare batch {batch}",
            )
        except StepFailed as e:
            if not isinstance(e.error, DataValidationError):
                raise  # a broken pipeline is not a bad batch
            reasons = e.error.report.reasons()  # what was wrong, not only that it was
            row.quarantined = "; ".join(reasons[:2]) or str(e.error).splitlines()[0]
            return row
        data = prepared.output(ct.data_output)
        if state.champion is not None:
            loaded, reference = self._champion(state.champion)
            record, _ = monitor_batch(
                project, ct.model, state.champion, batch, data, ct.label, reference, "replay",
                project.settings.gates.segment, loaded=loaded,
            )  # fmt: skip
            self.metric = key_metric(ct.metric, record)
            row.metric, row.drift_share = record.metrics.get(self.metric), record.drift_share
        # Decided at the end of the batch, in simulated time, with what monitoring just saw.
        state = replace(
            controller.state(now=self.period.end(batch), newest_batch=batch),
            last_training_at=self.trained_at,
        )
        fires = evaluate(self.triggers, state)
        if fires:
            run = controller.run(fires, batch)
            row.retrained, row.reason = True, run.reason
            row.fired = [fire.trigger for fire in fires]
            if run.status != "completed":
                row.failed = (run.error or run.status).strip().splitlines()[0]
            self.trained_at = self.period.end(batch)
        row.champion_after = controller.state(newest_batch=batch).champion
        return row

    def _champion(self, version: str) -> tuple[LoadedModel, Profile]:
        """A champion and its reference profile, loaded once."""
        from esteira.models import load
        from esteira.monitoring.monitor import reference_profile

        if version not in self._models:
            ct = self.project.settings.ct
            loaded = load(self.project, ct.model, version)
            reference = reference_profile(self.project, ct.model, version, ct.reference_output,
                                          loaded)  # fmt: skip
            self._models[version] = (loaded, reference)
        return self._models[version]
