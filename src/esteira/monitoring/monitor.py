"""Monitoring of a model version on a batch: drift of its inputs against the data it was
trained on, and its metrics when the batch carries labels. Each result is stored as a
monitoring record, which the drift and performance triggers read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError
from esteira.metadata import MonitoringRecord
from esteira.metrics import score
from esteira.validation.data import validate
from esteira.validation.profile import Profile, infer_profile

if TYPE_CHECKING:
    import pandas as pd

    from esteira.project import Project

DRIFT_CHECKS = ("psi", "js")


def training_data(project: Project, name: str, version: str, output: str) -> pd.DataFrame:
    """The `output` artifact (e.g. the training set) of the run that registered `version`."""
    from esteira.registry import Registry

    info = Registry(project).version(name, version, with_metrics=False)
    run_id = info.tags.get("esteira.pipeline_run_id")
    if not run_id:
        raise EsteiraError(f"version {version} of '{name}' was not registered by an esteira run")
    for step in project.metadata.run(run_id).steps:
        for io in step.outputs():
            if io.name == output:
                from esteira.pipelines.cache import artifact_ref

                return project.artifacts.load(artifact_ref(io))
    raise EsteiraError(
        f"the run {run_id[:12]} that registered version {version} of '{name}' has no output "
        f"'{output}'; set [ct] reference_output to the output the model was trained on"
    )


def monitor_batch(
    project: Project,
    name: str,
    version: str,
    batch: str,
    data: pd.DataFrame,
    label: str | None,
    reference: Profile,
    source: str = "monitor",
) -> MonitoringRecord:
    """Drift of `data`'s model inputs against `reference`, and the version's metrics on it."""
    from esteira.validation.model import load_for_scoring

    model, features = load_for_scoring(project, f"models:/{name}/{version}")
    inputs = Profile(
        reference.rows, {f: reference.columns[f] for f in features if f in reference.columns}
    )
    report = validate(data[list(inputs.columns)], inputs, project.settings.validation)
    drifted: dict[str, Any] = {
        f.column: {
            "test": f.check,
            "value": f.value,
            "threshold": f.threshold,
            "drifted": f.severity != "ok",
        }
        for f in report.findings
        if f.check in DRIFT_CHECKS
    }
    share = sum(d["drifted"] for d in drifted.values()) / len(drifted) if drifted else 0.0
    metrics: dict[str, float] = {}
    if label and label in data.columns:
        from esteira.validation.model import positive_scores

        gates = project.settings.gates
        names = sorted({project.settings.ct.metric, gates.metric, *gates.thresholds})
        metrics = score(names, data[label], positive_scores(model.predict(data[features])))
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
    return record


def reference_profile(project: Project, name: str, version: str, output: str) -> Profile:
    return infer_profile(training_data(project, name, version, output))
