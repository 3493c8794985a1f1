"""Monitoring of a model version on a batch: drift of its inputs and of its predictions
against the data it was trained on (`drift`), and its performance where labels are known
(`performance`). Each result is stored as a monitoring record, which the drift and
performance triggers read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.errors import EsteiraError
from esteira.metadata import MonitoringRecord
from esteira.monitoring.drift import column_drift, drift_of, drift_share
from esteira.monitoring.performance import performance, segment_performance
from esteira.summaries.profile import Profile, infer_profile, profile_column

if TYPE_CHECKING:
    import pandas as pd

    from esteira.config import Settings
    from esteira.metrics import Scores
    from esteira.models import LoadedModel
    from esteira.project import Project

PREDICTION = "prediction"


def training_data(project: Project, name: str, version: str, output: str) -> pd.DataFrame:
    """The `output` artifact (e.g. the training set) of the run that registered `version`."""
    from esteira.registry import RUN_TAG, Registry

    info = Registry(project).version(name, version, with_metrics=False)
    run_id = info.tags.get(RUN_TAG)
    if not run_id:
        raise EsteiraError(f"version {version} of '{name}' was not registered by an esteira run")
    found = run_output(project, run_id, output)
    if found is not None:
        return found
    raise EsteiraError(
        f"the run {run_id[:12]} that registered version {version} of '{name}' has no output "
        f"'{output}'; set [ct] reference_output to the output the model was trained on"
    )


def run_output(project: Project, run_id: str, output: str) -> Any | None:
    """The output `output` of pipeline run `run_id`, read from the artifact store; None
    when the run has none (ArtifactError when its artifact is gone)."""
    from esteira.artifacts import artifact_ref

    for step in project.metadata.run(run_id).steps:
        for io in step.outputs():
            if io.name == output:
                return project.artifacts.load(artifact_ref(io))
    return None


def reference_profile(
    project: Project, name: str, version: str, output: str, loaded: LoadedModel | None = None
) -> Profile:
    """Profile of the model's training data, with the profile of its own predictions on it
    (`loaded`: the version, when the caller has loaded it already)."""
    from esteira.models import load

    data = training_data(project, name, version, output)
    model = loaded or load(project, name, version)
    features = model.input_names
    sample = data.sample(min(len(data), 20_000), random_state=0) if len(data) else data
    profile = infer_profile(data)
    predictions = model.scores(sample[features]).point()
    profile.columns[PREDICTION] = profile_column(_series(predictions), PREDICTION)
    return profile


def monitor_batch(
    project: Project,
    name: str,
    version: str,
    batch: str,
    data: pd.DataFrame,
    label: str | None,
    reference: Profile,
    source: str = "monitor",
    segment: str | None = None,
    served: np.ndarray | None = None,
    loaded: LoadedModel | None = None,
) -> tuple[MonitoringRecord, np.ndarray]:
    """Drift of `data`'s model inputs and of the model's predictions (`served`, as the
    prediction log has them, or scored now), and the metrics of its task; the stored record
    and the predictions (positive score, predicted class or value). `loaded`: the version,
    when the caller has loaded it already."""
    from esteira.metrics import Scores
    from esteira.models import load

    model = loaded or load(project, name, version)
    features = model.input_names
    if served is None:
        scores = model.scores(data[features])
    else:
        scores = Scores.of(model.task, served, model.classes)
    predictions = scores.point()
    drifted = drift_of(reference, data, features, project.settings.monitoring.ignore_columns)
    if PREDICTION in reference.columns:
        found = column_drift(reference.columns[PREDICTION], _series(predictions))
        if found is not None:
            drifted[PREDICTION] = found | {"kind": "prediction"}
    labelled, segments = None, None
    known = _labelled(data, label)
    if known is not None:
        labelled = (data.loc[known, label].to_numpy(), scores.rows(known))
        if segment and segment in data.columns:
            segments = data.loc[known, segment].to_numpy()
    record = record_monitoring(project, model, batch, len(data), drifted, scores.task,
                               labelled, segments, source)  # fmt: skip
    return record, predictions


def record_monitoring(
    project: Project,
    model: LoadedModel,
    batch: str,
    rows: int,
    drifted: dict[str, Any],
    task: str,
    labelled: tuple[np.ndarray, Scores] | None,
    segments: np.ndarray | None,
    source: str,
) -> MonitoringRecord:
    """The stored record of a monitored batch: its drift, and the metrics of its task on the
    rows whose labels are known (`labelled`: their labels and scores; labels arrive later,
    often for some rows), per segment where `segments` gives each labelled row's."""
    from esteira.metrics import resolve_metric

    metrics: dict[str, Any] = {"task": task}
    if labelled is not None:
        truth, ours = labelled
        settings = project.settings
        key = resolve_metric(settings.ct.metric, ours.task, "[ct] metric")
        threshold = settings.model.threshold
        metrics = _performance(settings, truth, ours)
        if segments is not None:
            metrics["segments"] = {
                str(value): segment_performance(truth[index], ours.rows(index), key, threshold)
                for value, index in _groups(segments).items()
                if len(index) >= 50
            }
    record = MonitoringRecord(
        model=model.name,
        version=model.version,
        batch=batch,
        rows=rows,
        drift_share=drift_share(drifted),
        drifted=drifted,
        metrics=metrics,
        source=source,
    )
    project.metadata.add(record)
    return record


def batch_metrics(project: Project, model: LoadedModel, data: pd.DataFrame, label: str
                  ) -> dict[str, Any]:  # fmt: skip
    """The metrics a monitoring record of `model` on `data` would hold, recorded nowhere: a
    version judged on a batch it does not serve ({} without labels)."""
    known = _labelled(data, label)
    if known is None:
        return {}
    scores = model.scores(data.loc[known, model.input_names])
    return _performance(project.settings, data.loc[known, label].to_numpy(), scores)


def _labelled(data: pd.DataFrame, label: str | None) -> np.ndarray | None:
    """Which rows have their label (labels arrive later, often for some rows); None: none."""
    if not label or label not in data.columns or not data[label].notna().any():
        return None
    return data[label].notna().to_numpy()


def _performance(settings: Settings, truth: np.ndarray, ours: Scores) -> dict[str, Any]:
    """The task's metrics with the key metric and those the gates read."""
    from esteira.metrics import resolve_metric

    key = resolve_metric(settings.ct.metric, ours.task, "[ct] metric")
    gate = resolve_metric(settings.gates.metric, ours.task, "[gates] metric")
    return performance(truth, ours, [key, gate, *settings.gates.thresholds],
                       settings.model.threshold)  # fmt: skip


def _groups(values: np.ndarray) -> dict[Any, np.ndarray]:
    """The positions of each value's rows."""
    import pandas as pd

    return pd.Series(values).groupby(values).indices


def _series(values: np.ndarray) -> pd.Series:
    import pandas as pd

    return pd.Series(values, name=PREDICTION)
