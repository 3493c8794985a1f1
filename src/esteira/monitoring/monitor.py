"""Monitoring of a model version on a batch: drift of its inputs and of its predictions
against the data it was trained on, and its performance where labels are known. Each result
is stored as a monitoring record, which the drift and performance triggers read.

Which test decides a column follows the sample sizes, as Evidently does: with a small
reference (at most 1,000 rows) p-value tests (Kolmogorov-Smirnov for numbers, chi-square
for categories, drift at p < 0.05); with a larger one, distances with thresholds
(Wasserstein divided by the reference standard deviation for numbers, Jensen-Shannon for
categories, drift at 0.1). On thousands of rows a p-value test flags any harmless shift
(on the flights, KS gives p < 1e-8 on every numeric column between Jan-Mar and Jun-Aug), a
distance does not. PSI is reported beside, for reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from esteira.errors import EsteiraError
from esteira.metadata import MonitoringRecord
from esteira.metrics import score
from esteira.monitoring.drift import (
    chi_square_test,
    js_distance,
    ks_test,
    psi,
    wasserstein_normed,
)
from esteira.validation.profile import ColumnProfile, Profile, infer_profile, profile_column

if TYPE_CHECKING:
    import pandas as pd

    from esteira.project import Project

SMALL_REFERENCE = 1000
P_VALUE = 0.05
WASSERSTEIN_LIMIT = 0.1
JS_LIMIT = 0.1
PREDICTION = "prediction"


def column_drift(ref: ColumnProfile, values: pd.Series) -> dict[str, Any] | None:
    """The test that decides this column, its figure, its limit and the verdict."""
    present = values.dropna()
    if present.empty or not ref.counts:
        return None
    current = ref.bin_counts(present)
    found: dict[str, Any] = {"psi": round(psi(ref.counts, current), 6), "rows": len(present)}
    small = ref.count - ref.nulls <= SMALL_REFERENCE
    if ref.kind == "numeric":
        data = present.to_numpy(dtype=float)
        if small:
            d, p = ks_test(ref.quantiles, ref.count - ref.nulls, data)
            found |= {"test": "ks", "statistic": d, "value": p, "threshold": P_VALUE}
            found["drifted"] = p < P_VALUE
        else:
            w = wasserstein_normed(ref.quantiles, data, ref.std or 0.0)
            found |= {"test": "wasserstein", "value": w, "threshold": WASSERSTEIN_LIMIT}
            found["drifted"] = w >= WASSERSTEIN_LIMIT
    else:
        if small:
            statistic, p = chi_square_test(ref.counts, current)
            found |= {"test": "chi_square", "statistic": statistic, "value": p,
                      "threshold": P_VALUE, "drifted": p < P_VALUE}  # fmt: skip
        else:
            js = js_distance(ref.counts, current)
            found |= {"test": "jensen_shannon", "value": js, "threshold": JS_LIMIT,
                      "drifted": js >= JS_LIMIT}  # fmt: skip
    found["value"] = round(float(found["value"]), 6)
    found["drifted"] = bool(found["drifted"])
    return found


def drift_of(reference: Profile, data: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    out = {}
    for c in columns:
        if c in reference.columns and c in data.columns:
            result = column_drift(reference.columns[c], data[c])
            if result is not None:
                out[c] = result
    return out


def training_data(project: Project, name: str, version: str, output: str) -> pd.DataFrame:
    """The `output` artifact (e.g. the training set) of the run that registered `version`."""
    from esteira.pipelines.cache import artifact_ref
    from esteira.registry import Registry

    info = Registry(project).version(name, version, with_metrics=False)
    run_id = info.tags.get("esteira.pipeline_run_id")
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


def reference_profile(project: Project, name: str, version: str, output: str) -> Profile:
    """Profile of the model's training data, with the profile of its own predictions on it."""
    from esteira.validation.model import load_for_scoring, positive_scores

    data = training_data(project, name, version, output)
    model, features = load_for_scoring(project, f"models:/{name}/{version}")
    sample = data.sample(min(len(data), 20_000), random_state=0) if len(data) else data
    profile = infer_profile(data)
    predictions = positive_scores(model.predict(sample[features]))
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
) -> tuple[MonitoringRecord, np.ndarray]:
    """Drift of `data`'s model inputs and of the model's predictions (`served`, as the
    prediction log has them, or scored now), and its metrics; the stored record and the
    predictions."""
    from esteira.validation.model import load_for_scoring, positive_scores

    model, features = load_for_scoring(project, f"models:/{name}/{version}")
    if served is None:
        predictions = positive_scores(model.predict(data[features]))
    else:
        predictions = positive_scores(served)
    drifted = drift_of(reference, data, features)
    share = sum(d["drifted"] for d in drifted.values()) / len(drifted) if drifted else 0.0
    if PREDICTION in reference.columns:
        found = column_drift(reference.columns[PREDICTION], _series(predictions))
        if found is not None:
            drifted[PREDICTION] = found | {"kind": "prediction"}
    metrics: dict[str, Any] = {}
    labelled = data[label].notna().to_numpy() if label and label in data.columns else None
    if labelled is not None and labelled.any():  # labels arrive later, often for some rows
        known, scores = data[labelled], predictions[labelled]
        metrics = performance(project, known[label].to_numpy(), scores)
        if segment and segment in known.columns:
            metrics["segments"] = {
                str(value): performance(project, known[label].to_numpy()[index], scores[index])
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


def performance(project: Project, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """The project's gate and CT metrics, precision and recall at 0.5, and calibration."""
    gates = project.settings.gates
    names = sorted({project.settings.ct.metric, gates.metric, *gates.thresholds})
    found: dict[str, Any] = score(names, y, p)
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    flagged = p >= 0.5
    found["precision"] = float(y[flagged].mean()) if flagged.any() else 0.0
    found["recall"] = float(flagged[y == 1].mean()) if (y == 1).any() else 0.0
    found["mean_prediction"], found["positive_rate"] = float(p.mean()), float(y.mean())
    found["calibration_gap"] = found["mean_prediction"] - found["positive_rate"]
    found["rows"] = len(y)
    return found


def _series(values: np.ndarray) -> pd.Series:
    import pandas as pd

    return pd.Series(values, name=PREDICTION)
