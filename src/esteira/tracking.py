"""MLflow: runs, batched params and metrics, datasets, and models logged and registered.

`import mlflow` costs seconds, so nothing here imports it until a run has something to
track: a fully cached pipeline run never pays for it.

Model logging is made fast and still complete: the requirements are read from the installed
distributions of the libraries the model is made of (MLflow's default infers them in a
subprocess, ~3 s), and the signature from the input example. A logged dataset carries the
schema and digest MLflow infers, computed a column at a time (`esteira.datasets`: MLflow
visits every value, seconds for a training set).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import TrackingError, first_line
from esteira.files import sqlite_path, sqlite_problem

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


def _reach(uri: str) -> None:
    """MLflow's database server answers and takes the credentials, or one line says which
    does not (MLflow's own error is a traceback after minutes of retries)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError

    try:
        engine = create_engine(uri, connect_args={"connect_timeout": 10})
    except (ArgumentError, ModuleNotFoundError) as e:
        driver = f"the driver '{e.name}' is not installed" if isinstance(e, ImportError) else e
        raise TrackingError(f"MLflow's tracking URI cannot be used: {driver} (PostgreSQL: "
                            "postgresql+psycopg://..., pip install 'esteira-mlops[postgres]')"
                            ) from None  # fmt: skip
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect():
            pass
    except DBAPIError as e:
        reason = first_line(e.orig)
        raise TrackingError(
            f"cannot use MLflow's store {shown}: {reason}; start the server, or set "
            "MLFLOW_TRACKING_URI (user and password in the URL or in PGUSER and PGPASSWORD, "
            "never in esteira.toml)"
        ) from None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    model_uri: str
    run_id: str


class Tracker:
    """One MLflow experiment of one project; all calls name their run explicitly."""

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str,
        experiment: str,
        artifact_root: Path,
        trusted_types: Iterable[str] = (),
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.trusted_types = list(trusted_types)
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            import mlflow

            for uri in {self.tracking_uri, self.registry_uri}:
                path = sqlite_path(uri)
                problem = sqlite_problem(path) if path else None
                if problem:
                    raise TrackingError(
                        f"MLflow's store {path} {problem}: restore it from a backup, or move "
                        "it aside to start a new one (runs and registered models then start "
                        "empty; esteira's own history of them stays)"
                    )
                if uri.startswith(("postgresql", "mysql", "mssql")):
                    _reach(uri)
            self._client = mlflow.MlflowClient(self.tracking_uri, self.registry_uri)
        return self._client

    def missing_versions(
        self, versions: Iterable[tuple[str, str, str]]
    ) -> list[tuple[str, str, str]]:
        """Which of these (name, version, MLflow run id) the registry no longer has, or has
        from another run (a registry replaced). A registry in a local SQLite file is read
        directly: a fully cached run checks its versions without importing MLflow."""
        wanted = list(versions)
        path = sqlite_path(self.registry_uri)
        if path is None or not wanted:
            return self._missing_via_mlflow(wanted)
        if not path.is_file():
            return wanted
        import sqlite3
        from contextlib import closing

        # MLflow's schema: a deleted version keeps its row, in an internal stage.
        sql = ("SELECT 1 FROM model_versions WHERE name = ? AND version = ? AND run_id = ? "
               "AND current_stage != 'Deleted_Internal'")  # fmt: skip
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
            try:
                found = [con.execute(sql, (n, int(v), r)).fetchone() for n, v, r in wanted]
            except (sqlite3.Error, ValueError):  # not the schema expected: ask MLflow
                return self._missing_via_mlflow(wanted)
        return [w for w, row in zip(wanted, found, strict=True) if row is None]

    def _missing_via_mlflow(self, wanted: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        from mlflow.exceptions import MlflowException

        gone = []
        for name, version, run_id in wanted:
            try:
                found = self.client.get_model_version(name, version)
            except MlflowException:
                found = None
            if found is None or found.run_id != run_id:
                gone.append((name, version, run_id))
        return gone

    def activate(self, experiment: bool = False) -> None:
        """Point MLflow's process-wide URIs (which log_model, register_model and loading
        `models:/` read) at this project, without leaving them in os.environ: MLflow writes
        MLFLOW_TRACKING_URI there, and the next project loaded in this process would take it
        for the user's own setting."""
        import mlflow

        saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
        try:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri)
            if experiment:
                mlflow.set_experiment(experiment_id=self.experiment_id)
        finally:
            for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
                if key not in saved:
                    del os.environ[key]
            os.environ.update(saved)

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                location = (self.artifact_root / self.experiment).as_uri()
                self._experiment_id = self.client.create_experiment(
                    self.experiment, artifact_location=location
                )
        return self._experiment_id

    def start_run(self, name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        return run.info.run_id

    def end_run(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, "FINISHED" if status == "completed" else "FAILED")

    def log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """One `log_batch` call for any number of params, metrics and tags."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, _param_text(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def log_dataset(
        self,
        run_id: str,
        df: pd.DataFrame,
        name: str,
        source_uri: str,
        table_version: int | None = None,
        targets: str | None = None,
        context: str = "training",
    ) -> None:
        """Log `df` as an MLflow dataset of the run, with the schema and digest MLflow would
        infer (computed a column at a time: `esteira.datasets`)."""
        import mlflow.data
        from mlflow.data.delta_dataset_source import DeltaDatasetSource
        from mlflow.entities import DatasetInput, InputTag

        from esteira.datasets import dataset_digest, dataset_schema

        source = (
            DeltaDatasetSource(path=source_uri, delta_table_version=table_version)
            if table_version is not None
            else source_uri
        )
        # The schema hint about integer columns is not actionable for a logged dataset.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(df, source=source, name=name, targets=targets,
                                              digest=dataset_digest(df))  # fmt: skip
            dataset.__dict__["schema"] = dataset_schema(df)  # its cached property, filled
            entity = dataset._to_mlflow_entity()
        tags = [InputTag("mlflow.data.context", context)]
        self.client.log_inputs(run_id, [DatasetInput(entity, tags)])

    def log_model(
        self,
        run_id: str,
        model: Any,
        register_as: str | None,
        input_example: pd.DataFrame,
        predict_fn: str = "predict",
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Log a scikit-learn model with signature, example and requirements; register it."""
        import mlflow
        import mlflow.sklearn

        trusted = checked_trusted_types(model, self.trusted_types)
        # The logged model lands in MLflow's current experiment, not the run's.
        self.activate(experiment=True)
        try:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                run_id=run_id,
                signature=infer_signature(model, input_example, predict_fn),
                input_example=input_example,
                pip_requirements=requirements_for(model),
                pyfunc_predict_fn=predict_fn,
                serialization_format="skops",
                skops_trusted_types=trusted,
            )
            if register_as is None:
                return RegisteredModel("", "", info.model_uri, run_id)
            version = _quietly(
                mlflow.register_model,
                info.model_uri,
                register_as,
                tags={k: str(v) for k, v in (tags or {}).items()},
            )
        except mlflow.exceptions.MlflowException as e:
            raise TrackingError(
                f"MLflow could not log or register model '{register_as}': {e}"
            ) from e
        return RegisteredModel(register_as, str(version.version), info.model_uri, run_id)


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `fn` without MLflow's "Created version N" prints: esteira reports it itself."""
    from mlflow.utils.logging_utils import disable_logging, enable_logging

    disable_logging()
    try:
        return fn(*args, **kwargs)
    finally:
        enable_logging()


def infer_signature(model: Any, example: pd.DataFrame, predict_fn: str) -> Any:
    from mlflow.models import infer_signature as mlflow_infer_signature

    return mlflow_infer_signature(example, getattr(model, predict_fn)(example))


def checked_trusted_types(model: Any, allowed: Iterable[str]) -> list[str]:
    """The types skops would refuse in `model`; all must be ones the project trusts."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    refused = sorted(set(untrusted) - set(allowed))
    if refused:
        raise TrackingError(
            f"the model contains types that skops does not trust: {refused}. If you trust "
            "them, list them under [model] trusted_types in esteira.toml."
        )
    return sorted(untrusted)


def requirements_for(model: Any) -> list[str]:
    """Pinned requirements of the libraries the model's objects come from."""
    modules = {"mlflow", "sklearn", "skops", "numpy", "scipy", "pandas"}
    modules |= {type(obj).__module__.split(".")[0] for obj in _model_parts(model)}
    names = _distributions()
    if not modules <= names.keys():  # installed since it was read, or not a distribution's
        _distributions.cache_clear()
        names = _distributions()
    reqs = set()
    for module in modules:
        for dist in names.get(module, []):
            reqs.add(f"{dist}=={importlib.metadata.version(dist)}")
    return sorted(reqs)


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module -> the installed distributions that provide it, read once a process
    (a scan of every installed distribution, half a second, that each model saved or logged
    paid) and again when a model's module is not in it. Versions are read anew each time."""
    return importlib.metadata.packages_distributions()


def _model_parts(model: Any) -> Iterable[Any]:
    yield model
    if hasattr(model, "get_params"):
        for value in model.get_params(deep=True).values():
            if hasattr(value, "get_params") or hasattr(value, "fit"):
                yield value


def save_model(model: Any, path: Path, trusted_types: Iterable[str]) -> None:
    """Save a model in MLflow's format at `path` (a folder that must not exist)."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=checked_trusted_types(model, trusted_types),
        pip_requirements=requirements_for(model),
    )


def load_model(path: Path) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(path))


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
