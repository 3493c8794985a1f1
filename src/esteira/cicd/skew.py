"""The training/serving skew check: a model trained through a feature service gets its inputs
from the offline store when it trains (point in time) and from the online store when it
serves; for the same requests both must give the same inputs."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

from esteira.cicd.evidence import (
    NO_MODEL,
    CheckResult,
    Evidence,
    Trained,
    Verdict,
    each_model,
    first_line,
)
from esteira.errors import EsteiraError

if TYPE_CHECKING:
    import pandas as pd

    from esteira.features import FeatureService
    from esteira.lake import Lake

SAMPLE_ENTITIES = 5
SHOWN = 5  # differences named in the reason; the evidence has them all


def training_serving_skew(e: Evidence) -> CheckResult:
    """For a few entities of each model's training data, the model inputs of the offline
    store (point in time) equal those of the online store, within `[ci] tolerance`
    (relative). The views are materialized first (offline and online, in the throwaway
    home), as a pipeline's `ctx.features.materialize` does. The online store keeps each
    entity's latest values only, so both are asked as of one time: the newest observation
    in the service's views, the moment the online store describes. A difference fails,
    naming the entity and the input. A model with no feature service is skipped (why said).
    """
    result = each_model(e, "training_serving_skew", _offline_versus_online)
    if result.reason == NO_MODEL:
        return CheckResult.skip(result.name, NO_MODEL)
    return result


def _offline_versus_online(e: Evidence, t: Trained) -> Verdict | str:
    service = t.model.service
    if service is None:
        return "not trained through a feature service: requests carry all its inputs"
    lacking = [f for f in service.fields if f not in t.reference.columns]
    if lacking:
        why = f"train_set lacks request fields {lacking} of feature service '{service.name}'"
        return False, f"{why}: no entities to look up", {}
    store = e.project.features
    try:
        for view in service.views:
            store.materialize(view)
        requests = sample_requests(service, t.reference, e.project.lake)
        offline = store.training_set(requests, service)
        online, _ = store.serving_set(service, requests)
    except EsteiraError as error:
        return False, f"could not look the inputs up: {first_line(error)}", {}
    keys = [k for k in service.event_keys if k != service.at]
    entities = [entity_name(requests, i, keys) for i in range(len(requests))]
    tolerance = e.project.settings.ci.tolerance
    found = differences(entities, offline, online, t.model.input_names, tolerance)
    at = str(requests[service.at].iloc[0]) if service.at and len(requests) else "now"
    inputs = [c for c in t.model.input_names if c in offline and c in online]
    present = int((offline[inputs].notna() & online[inputs].notna()).to_numpy().sum())
    figures = {"service": service.name, "at": at, "entities": entities,
               "inputs": len(t.model.input_names), "values_present": present,
               "differences": found}  # fmt: skip
    if found:
        more = f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else ""
        told = "; ".join(found[:SHOWN])
        return False, f"offline and online inputs differ: {told}{more}", figures
    told = (
        f"{len(entities)} sample entities get the same {len(t.model.input_names)} inputs "
        f"offline and online ({present} values present; feature service '{service.name}', "
        f"as of {at})"
    )
    return True, told, figures


def sample_requests(service: FeatureService, rows: pd.DataFrame, lake: Lake) -> pd.DataFrame:
    """Requests for up to SAMPLE_ENTITIES distinct entities of `rows`, spread over them, all
    at the newest time the service's views have observed."""
    import numpy as np

    keys = [k for k in service.event_keys if k != service.at]
    candidates = rows[service.fields].dropna(subset=keys)
    if keys:
        candidates = candidates.drop_duplicates(keys)
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(SAMPLE_ENTITIES, len(candidates))))
    requests = candidates.iloc[picks.round().astype(int)].reset_index(drop=True)
    times = [
        lake.read(v.offline_table, columns=[v.timestamp])[0][v.timestamp].max()
        for v in service.views
        if v.timestamp
    ]
    if service.at and times:
        requests[service.at] = max(times)
    return requests


def entity_name(requests: pd.DataFrame, row: int, keys: list[str]) -> str:
    if not keys:
        return f"request {row}"
    return ", ".join(f"{k}={requests[k].iloc[row]}" for k in keys)


def differences(
    entities: list[str],
    offline: pd.DataFrame,
    online: pd.DataFrame,
    inputs: list[str],
    tolerance: float,
) -> list[str]:
    """One line per input of an entity whose offline and online values differ."""
    if len(offline) != len(entities):
        return [
            f"the offline store gives {len(offline)} rows for {len(entities)} requests: a view "
            "keeps several rows for one entity (and time)"
        ]
    found = [
        f"model input '{c}' is missing {'offline' if c not in offline else 'online'}"
        for c in inputs
        if c not in offline or c not in online
    ]
    for row, entity in enumerate(entities):
        for c in inputs:
            if c not in offline or c not in online:
                continue
            a, b = offline[c].iloc[row], online[c].iloc[row]
            if not same_value(a, b, tolerance):
                found.append(f"{entity}: {c} is {a!r} offline, {b!r} online")
    return found


def same_value(a: Any, b: Any, tolerance: float) -> bool:
    """Both missing, numbers within a relative `tolerance`, or equal."""
    import pandas as pd

    a_missing, b_missing = bool(pd.isna(a)), bool(pd.isna(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
        a, b = float(a), float(b)  # type: ignore[arg-type]
        return abs(a - b) <= tolerance * max(abs(a), abs(b))
    return bool(a == b)
