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

    from esteira.models import LoadedModel
    from esteira.project import Project

PREDICTION = "prediction"


def training_data(project: Project, name: str, version: str, output: str) -> pd.DataFrame:
    """The `output` artifact (e.g. the training set) of the run that registered `version`."""
    from esteira.artifacts import artifact_ref
    from esteira.registry import RUN_TAG, Registry

    info = Registry(project).version(name, version, with_metrics=False)
    run_id = info.tags.get(RUN_TAG)
    if not run_id:
        raise EsteiraError(f"version {version} of '{name}' was not registered by an esteira run")
    for step in project.metadata.run(run_id).steps:
        for io in step.outputs():
            if io.name == output:
                return project.artifacts.load(artifact_ref(io))
    raise EsteiraError(
        f"the run {run_id[:12]} that registered version {version} of '{name}' has no output "
        f"'{output}'; set [ct] reference_output to the output the model was trained on"
    )


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
    from esteira.metrics import Scores, resolve_metric
    from esteira.models import load

    model = loaded or load(project, name, version)
    features = model.input_names
    if served is None:
        scores = model.scores(data[features])
    else:
        scores = Scores.of(model.task, served, model.classes)
    predictions = scores.point()
    drifted = drift_of(reference, data, features, project.settings.monitoring.ignore_columns)
    share = drift_share(drifted)
    if PREDICTION in reference.columns:
        found = column_drift(reference.columns[PREDICTION], _series(predictions))
        if found is not None:
            drifted[PREDICTION] = found | {"kind": "prediction"}
    metrics: dict[str, Any] = {"task": scores.task}
    labelled = data[label].notna().to_numpy() if label and label in data.columns else None
    if labelled is not None and labelled.any():  # labels arrive later, often for some rows
        settings = project.settings
        key = resolve_metric(settings.ct.metric, scores.task, "[ct] metric")
        gate = resolve_metric(settings.gates.metric, scores.task, "[gates] metric")
        known, ours = data[labelled], scores.rows(labelled)
        truth, threshold = known[label].to_numpy(), settings.model.threshold
        metrics = performance(truth, ours, [key, gate, *settings.gates.thresholds], threshold)
        if segment and segment in known.columns:
            metrics["segments"] = {
                str(value): segment_performance(truth[index], ours.rows(index), key, threshold)
                for value, index in known.groupby(segment).indices.items()
                if len(index) >= 50
            }
    record = MonitoringRecord(
        model=name,
        version=str(version),
        batch=batch,
        rows=len(data),
        drift_share=share,
        drifted=drifted,
        metrics=metrics,
        source=source,
    )
    project.metadata.add(record)
    return record, predictions


def _series(values: np.ndarray) -> pd.Series:
    import pandas as pd

    return pd.Series(values, name=PREDICTION)
