"""From a request's rows to the model's input frame.

A request carries every input of the model, or, for a model trained through a feature
service, only the service's request fields (a departure: when, from where, which plane):
its features then come from the online store as of the request's time and are derived as
in training. Which one a request is follows from what it carries: a row with any input
that is not a request field (a weather reading, a derived hour) asks for no lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esteira.serving.loaded import Column
from esteira.serving.requests import check, model_frame, to_frame

if TYPE_CHECKING:
    import pandas as pd

    from esteira.features import FeatureStore
    from esteira.serving.loaded import LoadedModel

NOT_AN_INPUT = "not an input of this model"


@dataclass
class Inputs:
    frame: pd.DataFrame
    """The model's columns, typed."""
    logged: list[dict[str, Any]] | pd.DataFrame
    """What the prediction log keeps per row: the rows as sent, or the request fields with
    the features looked up and derived for them."""
    misses: dict[str, int] = field(default_factory=dict)
    """Per feature view, rows it had no (fresh) value for."""


def prepare(model: LoadedModel, rows: list[Any], features: FeatureStore) -> Inputs:
    """Check the rows against what they must carry and build the model's inputs; raises
    BadRequest naming each wrong field."""
    service = model.service
    if service is None or not needs_lookup(model, rows):
        check(rows, model.columns, NOT_AN_INPUT)
        return Inputs(to_frame(rows, model.columns), rows)
    columns = [Column(name, kind, required=True) for name, kind in service.request]
    unknown = (
        f"not a request field of feature service '{service.name}' ({', '.join(service.fields)})"
        " nor one of a full set of model inputs"
    )
    check(rows, columns, unknown)
    frame, misses = features.serving_set(service, to_frame(rows, columns))
    return Inputs(model_frame(frame, model.columns), frame, misses)


def needs_lookup(model: LoadedModel, rows: list[Any]) -> bool:
    """The rows carry only the model's feature service fields (their features are looked up)."""
    if model.service is None:
        return False
    beyond = {c.name for c in model.columns} - set(model.service.fields)
    return not any(isinstance(row, dict) and not beyond.isdisjoint(row) for row in rows)
