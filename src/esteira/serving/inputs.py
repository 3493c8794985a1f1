"""From requests' rows to the model's input frame.

A request carries every input of the model, or, for a model trained through a feature
service, only the service's request fields (a departure: when, from where, which plane):
its features then come from the online store as of the request's time and are derived as
in training. Which one a request is follows from what it carries: a row with any input
that is not a request field (a weather reading, a derived hour) asks for no lookup.

Checking and converting to the columns' types happen per request, on arrival, so a wrong
row fails its own request alone and a request's values never depend on the others it is
batched with; completing the inputs happens per micro-batch, so concurrent lookups share
one online-store read and one `derive` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esteira.features.definitions import column_array
from esteira.models import Column
from esteira.serving.requests import build_columns, build_frame, convert, model_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from esteira.features import FeatureService, FeatureStore
    from esteira.models import LoadedModel

NOT_AN_INPUT = "not an input of this model"


@dataclass(frozen=True)
class Checked:
    """A request's rows, checked and converted."""

    rows: list[dict[str, Any]]
    lookup: bool
    """They carry the model's feature service fields, not the model's inputs."""
    typed: dict[str, np.ndarray]
    """Per column they carry (the model's inputs or the service's fields), their values
    typed."""


@dataclass(frozen=True)
class Completed:
    """One request's share of a batch's inputs."""

    logged: list[dict[str, Any]]
    """What the prediction log keeps per row: the rows as sent, or the request fields with
    the features looked up and derived for them (times as ISO 8601 in UTC, missing values
    as None)."""
    misses: dict[str, int]
    """Per feature view, the rows it had no (fresh) value for."""


def check_rows(model: LoadedModel, rows: list[Any]) -> Checked:
    """Check the rows against what they must carry and convert them; raises BadRequest
    naming each wrong field."""
    service = model.service
    if service is None or not _carries_only(service, model, rows):
        return Checked(rows, False, convert(rows, model.columns, NOT_AN_INPUT))
    unknown = (
        f"not a request field of feature service '{service.name}' ({', '.join(service.fields)})"
        " nor one of a full set of model inputs"
    )
    # The service looks its views up as of this time: without it there is nothing to ask.
    at = {service.at: f"feature service '{service.name}' looks up features as of this time"}
    typed = convert(rows, _request_columns(service), unknown, at if service.at else None)
    return Checked(rows, True, typed)


def complete(
    model: LoadedModel, requests: list[Checked], features: FeatureStore
) -> tuple[pd.DataFrame, list[Completed]]:
    """The model's input frame for requests of one kind (all lookups or none), and each
    request's share. One frame for all their rows: building it costs the same for 1 row
    as for 100."""
    service = model.service
    typed = [r.typed for r in requests]
    if not requests[0].lookup or service is None:
        return build_frame(typed, model.columns), [Completed(r.rows, {}) for r in requests]
    served, missed = features.serving_columns(
        service, build_columns(typed, _request_columns(service))
    )
    logged, shares, start = logged_rows(served), [], 0
    for r in requests:
        end = start + len(r.rows)
        misses = {view: sum(flags[start:end]) for view, flags in missed.items()}
        shares.append(Completed(logged[start:end], misses))
        start = end
    return model_frame(served, model.columns), shares


def logged_rows(served: dict[str, Any]) -> list[dict[str, Any]]:
    """The served columns as rows of plain values, as the prediction log keeps them."""
    values = {name: _plain(column) for name, column in served.items()}
    return [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]


def _plain(column: Any) -> list[Any]:
    """A column's values as JSON takes them: times as ISO 8601 in UTC to the microsecond
    (as pandas writes them), missing values as None (NaN stays: JSON writes it as null)."""
    import numpy as np

    if isinstance(column, list):
        return column
    if column.dtype.kind == "M":
        text = np.datetime_as_string(column_array(column).astype("datetime64[us]"), unit="us")
        return [None if t == "NaT" else f"{t}Z" for t in text.tolist()]
    if isinstance(column, np.ndarray):
        return column.tolist()
    return column_array(column).tolist()  # a Series, from a derive that returns a DataFrame


def _request_columns(service: FeatureService) -> list[Column]:
    return [Column(name, kind, required=True) for name, kind in service.request]


def _carries_only(service: FeatureService, model: LoadedModel, rows: list[Any]) -> bool:
    """No row carries a model input that the service would add (lookup or derive)."""
    beyond = {c.name for c in model.columns} - set(service.fields)
    return not any(isinstance(row, dict) and not beyond.isdisjoint(row) for row in rows)
