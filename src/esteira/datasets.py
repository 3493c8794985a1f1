"""What MLflow records of a DataFrame logged as a dataset (its schema and digest), the same
values MLflow computes, computed a column at a time.

MLflow infers a logged DataFrame's schema by visiting every value of every column in Python
(is it missing? which type?) and picks the columns its digest hashes by the type of every
value: about 20 seconds for a quarter of a million rows of twenty columns on a busy
machine, paid by each training and evaluation that logs its data. Here a column whose dtype
answers (numbers, booleans, times: `isna` for missing values) or whose values are all text
is judged at once, and only what remains (lists, dicts, mixed objects) goes through
MLflow's own per-value inference, so the recorded schema and digest are MLflow's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Kinds of the dtypes whose values are never Python objects of other kinds (bool, int,
# unsigned, float, complex, timedelta, datetime): the dtype tells their type.
_TYPED_KINDS = "biufcmM"


def dataset_schema(df: pd.DataFrame) -> Any:
    """MLflow's schema of `df` (`mlflow.types.Schema`, as `PandasDataset.schema` infers it),
    or None where MLflow cannot infer one."""
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.utils import _infer_numpy_dtype, _infer_pandas_column, _infer_required

    try:
        columns = []
        for name in df.columns:
            col = df[name]
            if col.ndim != 1 or len(col.values.shape) != 1:
                kind, required = _infer_pandas_column(col), _infer_required(col)  # MLflow says
            elif col.dtype.kind in _TYPED_KINDS:
                kind, required = _infer_numpy_dtype(col.dtype), not _has_missing(col)
            elif _text(col):
                kind, required = DataType.string, not _has_missing(col)
            else:
                kind, required = _infer_pandas_column(col), _infer_required(col)
            columns.append(ColSpec(type=kind, name=name, required=required))
        return Schema(columns)
    except Exception:  # as MLflow: a schema it cannot infer is left out
        return None


def dataset_digest(df: pd.DataFrame) -> str:
    """MLflow's digest of `df` (`mlflow.data.digest_utils.compute_pandas_digest`): its first
    rows' string and number columns hashed, with its length and column names."""
    import numpy as np
    import pandas as pd
    from mlflow.data.digest_utils import MAX_ROWS, compute_pandas_digest, get_normalized_md5_digest

    if df.empty or not df.columns.is_unique:
        return compute_pandas_digest(df)  # nothing to save, or columns MLflow reads together
    trimmed = df.head(MAX_ROWS)
    strings = trimmed.columns[[_all_str(df[name]) for name in df.columns]]
    numbers = trimmed.select_dtypes(include=[np.number]).columns
    trimmed = trimmed[strings.union(numbers)]
    return get_normalized_md5_digest(
        [pd.util.hash_pandas_object(trimmed).values, np.int64(len(df))]
        + [str(x).encode() for x in df.columns]
    )


def _has_missing(col: pd.Series) -> bool:
    """A value MLflow takes for missing: None, NaN, pandas' NA or NaT."""
    return bool(col.isna().any())


def _text(col: pd.Series) -> bool:
    """Strings, with missing values only of the kinds MLflow skips (None, NaN, NA, NaT): the
    column MLflow infers as `string` after looking at every value."""
    import pandas as pd

    if pd.api.types.infer_dtype(col, skipna=True) != "string":
        return False
    missing = col[col.isna()].astype(object)
    return all(x is None or x is pd.NA or x is pd.NaT or isinstance(x, float) for x in missing)


def _all_str(col: pd.Series) -> bool:
    """Every value is a `str` (exactly: MLflow's digest compares each value's type)."""
    if col.dtype.kind in _TYPED_KINDS:
        return False  # numbers, booleans and times are never `str`
    return bool((col.map(type) == str).all())  # noqa: E721 - MLflow's own comparison
