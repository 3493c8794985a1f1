"""What a project declares in code: feature views (features kept per entity, or global:
one row per time, such as a city-wide weather feed) and feature services (what a model's
requests carry and how they become the model's inputs)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from esteira.errors import EsteiraError
from esteira.provenance import source_of

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REQUEST_KINDS = ("string", "double", "long", "boolean", "datetime")
"""Types a request field may have; the names of MLflow's column types."""
SERVICE_TAG = "esteira.feature_service"
SERVICE_FINGERPRINT_TAG = "esteira.feature_service.fingerprint"


class FeatureError(EsteiraError):
    """A feature view or service is ill-defined, or its data does not fit its definition."""


@dataclass(frozen=True)
class FeatureView:
    name: str
    source: str
    entities: tuple[str, ...]
    """The keys the features are kept by; none for a global view (one row per time, joined
    on time alone)."""
    features: tuple[str, ...]
    timestamp: str | None = None
    """Event time of each row; None for static attributes (joined on the keys alone)."""
    ttl: timedelta | None = None
    """Values older than this at the event's time (training or request) count as missing."""
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    description: str = ""

    @property
    def fingerprint(self) -> str:
        """Changes with the definition, so steps that use the view rerun when it changes."""
        return _digest(
            self.name,
            self.source,
            self.entities,
            self.features,
            self.timestamp,
            self.ttl,
            _source(self.transform),
        )

    @property
    def is_global(self) -> bool:
        """Kept for everything at once (no entity key): a request needs no key to look it up."""
        return not self.entities

    @property
    def offline_table(self) -> str:
        return f"features_{self.name}"

    @property
    def columns(self) -> list[str]:
        return [*self.entities, *([self.timestamp] if self.timestamp else []), *self.features]


def feature_view(
    name: str,
    *,
    source: str,
    entities: Sequence[str],
    features: Sequence[str],
    timestamp: str | None = None,
    ttl: timedelta | None = None,
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    description: str = "",
) -> FeatureView:
    """Declare a feature view (see `FeatureView`)."""
    _check_name("feature view", name)
    if not features:
        raise FeatureError(f"feature view '{name}' needs at least one feature")
    if not entities and timestamp is None:
        raise FeatureError(
            f"feature view '{name}' has no entity and no timestamp: a view without entities "
            "(global features) needs timestamp= to hold one row per time"
        )
    return FeatureView(
        name, source, tuple(entities), tuple(features), timestamp, ttl, transform, description
    )


@dataclass(frozen=True)
class FeatureService:
    """The inputs of a model as its callers know them. A request carries the `request`
    fields (entity keys and facts of the event, such as its time); the `views` add what is
    known about each entity (or, for a global view, about everything) as of the request's
    time `at` (now when None); `derive` computes the rest from both. Training sets (offline,
    point in time) and served requests (online store) go through the same definition, so
    the model sees the same features."""

    name: str
    request: tuple[tuple[str, str], ...]
    """(field, kind) pairs; kinds are REQUEST_KINDS."""
    views: tuple[FeatureView, ...]
    at: str | None = None
    derive: Callable[..., Any] | None = None
    description: str = ""
    columnar: bool = False
    """`derive` takes the rows as NumPy arrays by column name (see `DeriveInputs`) and
    returns the columns it adds by name, instead of taking and returning a DataFrame. A
    served request then builds no frame but the model's: a DataFrame's fixed costs are
    most of a few rows' derive."""

    @property
    def fingerprint(self) -> str:
        """Changes with the definition: the model's tag says which one it learned from."""
        return _digest(
            self.name,
            self.request,
            self.at,
            [v.fingerprint for v in self.views],
            _source(self.derive),
        )

    @property
    def tags(self) -> dict[str, str]:
        """Tags of a model version trained through this service."""
        return {SERVICE_TAG: self.name, SERVICE_FINGERPRINT_TAG: self.fingerprint}

    @property
    def fields(self) -> list[str]:
        return [name for name, _ in self.request]

    @property
    def event_keys(self) -> list[str]:
        """What identifies an event: the views' entity keys and the request's time."""
        keys = dict.fromkeys(e for v in self.views for e in v.entities)
        return [*keys, *([self.at] if self.at else [])]

    @property
    def looked_up(self) -> list[str]:
        """The features the views add: a request carrying one of them is not a lookup."""
        return [f for v in self.views for f in v.features]

    def apply_derive(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the derived columns (a columnar derive's added at the end)."""
        if self.derive is None:
            return frame
        if self.columnar:
            return frame.assign(**self.derived_columns(frame))
        derived = self.derive(frame)
        if derived is None or not hasattr(derived, "columns"):
            raise FeatureError(
                f"feature service '{self.name}': derive must return a DataFrame, "
                f"got {type(derived).__name__}"
            )
        return derived

    def derived_columns(self, columns: Mapping[str, Any] | pd.DataFrame) -> dict[str, Any]:
        """The columns a columnar derive adds to `columns` (a DataFrame, or arrays, Series
        or lists by name)."""
        added = self.derive(DeriveInputs(columns)) if self.derive else {}
        if not isinstance(added, Mapping):
            raise FeatureError(
                f"feature service '{self.name}': a columnar derive must return the columns "
                f"it adds by name (a dict), got {type(added).__name__}"
            )
        return dict(added)


class DeriveInputs(Mapping):
    """The rows as a columnar derive reads them, the same in training and serving: NumPy
    arrays by column name, converted when read (a derive reads a few): times as
    datetime64[ns] in UTC (NaT when missing; times without a zone taken as UTC), numbers
    as float64 with NaN where one is missing (else with their NumPy dtype, as pandas'
    nullable ones hold it), strings and other objects as object arrays with None when
    missing. Booleans are NumPy's in a table without a missing one, objects from a
    request."""

    def __init__(self, columns: Mapping[str, Any] | pd.DataFrame) -> None:
        self._columns = columns

    def __getitem__(self, name: str) -> np.ndarray:
        return column_array(self._columns[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def column_array(values: Any) -> np.ndarray:
    """A column (Series, Index, array or list) as `DeriveInputs` gives it."""
    import numpy as np
    import pandas as pd

    dtype = getattr(values, "dtype", None)
    if dtype is not None and dtype.kind == "M":  # zone-aware (DatetimeTZDtype) too
        times = values if isinstance(values, pd.DatetimeIndex) else pd.DatetimeIndex(values)
        return (times if times.unit == "ns" else times.as_unit("ns")).asi8.view("datetime64[ns]")
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        return np.asarray(values)
    if dtype is not None and dtype.kind in "iuf":  # pandas' nullable numbers (a join's NULLs)
        if values.isna().any():
            return values.to_numpy(dtype="float64", na_value=np.nan)
        return values.to_numpy(dtype=dtype.numpy_dtype)
    if dtype is None:  # a list
        array = np.empty(len(values), dtype=object)  # never nested, whatever the values
        array[:] = values
        values = array
    return pd.array(values, dtype=object).to_numpy(dtype=object, na_value=None)


def feature_service(
    name: str,
    *,
    request: Mapping[str, str],
    views: Sequence[FeatureView] = (),
    at: str | None = None,
    derive: Callable[..., Any] | None = None,
    description: str = "",
    columnar: bool = False,
) -> FeatureService:
    """Declare a feature service (see `FeatureService`); log a model with `features=` it to
    serve requests that carry only its request fields. `derive` takes the rows as a
    DataFrame and returns it with its columns added, or, `columnar=True`, takes NumPy
    arrays by name and returns the columns it adds (the faster for a served request)."""
    _check_name("feature service", name)
    where = f"feature service '{name}'"
    wrong = {f: k for f, k in request.items() if k not in REQUEST_KINDS}
    if wrong:
        raise FeatureError(f"{where}: request kinds {wrong} are not among {list(REQUEST_KINDS)}")
    if at is not None and request.get(at) != "datetime":
        raise FeatureError(f"{where}: at={at!r} must be a request field of kind 'datetime'")
    for view in views:
        missing = [e for e in view.entities if e not in request]
        if missing:
            raise FeatureError(
                f"{where}: view '{view.name}' is keyed by {missing}; add them to request"
            )
        if view.timestamp and at is None:
            raise FeatureError(
                f"{where}: view '{view.name}' changes over time; name the "
                "request's time field with at="
            )
    clash = sorted(set(request) & {f for v in views for f in v.features})
    if clash:
        raise FeatureError(f"{where}: request fields {clash} are also features of its views")
    return FeatureService(
        name, tuple(request.items()), tuple(views), at, derive, description, columnar
    )


def _check_name(what: str, name: str) -> None:
    if not _NAME.match(name):
        raise FeatureError(f"{what} name {name!r}: use lower-case letters, digits, _")


def _source(fn: Callable[..., Any] | None) -> str:
    return "" if fn is None else source_of(fn)


def _digest(*fields: Any) -> str:
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]
