"""Project configuration: `esteira.toml` with laptop defaults, overridden by environment variables.

Every path defaults to the project's `.esteira/` folder, so a project runs whole on one
machine; pointing `MLFLOW_TRACKING_URI` or `metadata.url` at a server moves one component.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from esteira.config_schema import explain
from esteira.errors import ConfigError
from esteira.metrics import Task, check_settings

CONFIG_FILE = "esteira.toml"
HOME_VARIABLE = "ESTEIRA_HOME"
"""Folder of the embedded stores (by default `<project>/.esteira`): dev's, and the other
environments' under `environments/NAME` in it, so moving it moves them all and none mixes
with another; an environment with its own `home` keeps it. It has no esteira.toml key."""
ENV_VARIABLE = "ESTEIRA_ENV"
"""The environment commands work in (`--env`), `dev` by default."""
DEFAULT_ENVIRONMENT = "dev"
ENVIRONMENT = {
    "tracking.uri": "MLFLOW_TRACKING_URI",
    "tracking.registry_uri": "MLFLOW_REGISTRY_URI",
    "tracking.experiment": "MLFLOW_EXPERIMENT_NAME",
    "metadata.url": "ESTEIRA_METADATA_URL",
    "lake.path": "ESTEIRA_LAKE",
}
"""The esteira.toml keys an environment variable overrides, and that variable."""

# Types inside common scikit-learn models that skops does not trust by default. esteira trusts
# these deliberately (they hold only arrays); anything else must be listed by the project.
DEFAULT_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
]


class _Section(BaseModel):
    # The docstring under each field is its documentation (docs/configuration.md, `esteira config`).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ProjectSection(_Section):
    """The project: `[project]`."""

    name: str = ""
    """The project's name; by default its folder's name. Also the default MLflow experiment."""
    modules: list[str] = Field(default_factory=list)
    """Python modules (importable from the project folder) that define the pipelines and
    feature views; by default `pipelines` (a pipelines.py beside esteira.toml)."""
    paths: list[str] = Field(default_factory=list)
    """More folders, relative to the project, to import its modules from (besides the
    project folder): code shared by several projects."""


class TrackingSection(_Section):
    """MLflow: `[tracking]`."""

    uri: str = ""
    """MLflow tracking URI (a server, or Databricks); by default a SQLite file,
    `.esteira/mlflow.db`. Environment: MLFLOW_TRACKING_URI."""
    registry_uri: str = ""
    """MLflow model registry URI; by default the tracking URI. Environment:
    MLFLOW_REGISTRY_URI."""
    experiment: str = ""
    """MLflow experiment of the project's runs; by default the project's name. Environment:
    MLFLOW_EXPERIMENT_NAME."""


class MetadataSection(_Section):
    """esteira's metadata store (runs, steps, lineage, decisions): `[metadata]`."""

    url: str = ""
    """Any SQLAlchemy URL (e.g. PostgreSQL); by default a SQLite file, `.esteira/esteira.db`.
    Environment: ESTEIRA_METADATA_URL."""


class LakeSection(_Section):
    """The Delta Lake tables: `[lake]`."""

    path: str = ""
    """Folder of the lake's tables, relative to the project (by default `.esteira/lake`), or
    a URL on object storage (`s3://bucket/prefix`; credentials from the environment).
    Environment: ESTEIRA_LAKE."""


class ModelSection(_Section):
    """The model the project trains: `[model]`."""

    task: Task | None = None
    """binary, multiclass or regression; when unset, inferred from the target and the model
    at the first training, and recorded on every version."""
    threshold: float = Field(default=0.5, gt=0, lt=1)
    """Score at or above which a binary classifier's prediction counts as positive
    (precision and recall in monitoring)."""
    trusted_types: list[str] = Field(default_factory=list)
    """Extra types that model serialization (skops) may load, beyond esteira's defaults."""


class RuntimeSection(_Section):
    """Threads: `[runtime]`."""

    threads: int | None = Field(default=None, ge=1)
    """Threads for steps, gates and batch prediction; by default the cores not already busy."""
    serving_threads: int = Field(default=1, ge=1)
    """Threads per prediction in the service (concurrent requests use the other cores); the
    compatibility gate times the model with the same."""


class ServingSection(_Section):
    """Limits of the prediction service: `[serving]` (`esteira serve` options override)."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    """Largest request body; a larger one gets 413, checked on Content-Length and again
    while the body streams in."""
    read_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds a client has to send a request's whole body (one that promises more than it
    sends gets 408 and its connection closed)."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's line and headers, else its connection is
    closed."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request line plus headers; a larger one closes the connection with 431."""
    max_headers: int = Field(default=100, ge=1)
    """Most header fields in a request; more get 431."""
    max_connections: int = Field(default=512, ge=1)
    """Open connections (or requests in progress) beyond which new requests get 503."""
    keep_alive_s: float = Field(default=5.0, gt=0)
    """Seconds an idle keep-alive connection stays open."""


class MonitoringSection(_Section):
    """Drift monitoring: `[monitoring]`."""

    ignore_columns: list[str] = Field(default_factory=list)
    """Inputs left out of the drift share and the drift trigger (still measured and shown),
    e.g. calendar columns that move by design: month, season."""


class Thresholds(_Section):
    """Data validation limits: `[validation]`, and `[validation.columns.NAME]` per column."""

    max_null_rate_increase: float = 0.2
    """A column fails when its null rate rose by more than this (0.2: 20 points)."""
    max_unseen_category_rate: float = 0.1
    """A category column fails when more than this share of its values were never seen."""
    max_out_of_range_rate: float = 0.6
    """A number column fails when more than this share of values fall outside the middle
    99% of the reference's (only warns for a batch after a gap)."""
    max_mean_shift_std: float = 4.0
    """A number column fails when its mean lies more than this many reference standard
    deviations outside the range of the earlier batches' means (widened, after a gap, by
    the most they ever moved per batch, times the batches missing)."""
    max_spread_ratio: float = 5.0
    """A number column fails when its spread (mean absolute deviation from the median) is
    more than this many times larger than the largest of the earlier batches', or smaller
    than their smallest: a change of units (x60, x1000) or a column gone constant."""
    max_scale_steps: float = 8.0
    """A number column fails when its mean and its spread both moved the same way, each
    beyond its earlier batches' range by more than this many times the most history ever
    moved it per batch (with 3 earlier batches at least): a change of units by a factor a
    season never makes to that column (miles to km, x1.6, on a distance)."""
    max_negative_rate: float = 0.05
    """A number column whose earlier batches had at most this share of negative values fails
    when a batch has more (30% negative distances, temperatures in Celsius in winter)."""
    max_outside_period_rate: float = 0.05
    """A date-time column whose earlier values lay inside their batch's period (all but this
    share) fails when more than this share of a batch's values lie outside its period."""
    max_label_association: float = 0.9
    """A column fails when it predicts the label this well in a batch (0: not at all, 1:
    perfectly; binned) but did not in the reference: the label leaked into it."""
    max_psi: float = 0.25
    """Population stability index above which a column warns (fails with `block_on_drift`)."""
    max_js: float = 0.2
    """Jensen-Shannon distance above which a column warns (fails with `block_on_drift`)."""
    block_on_drift: bool = False
    """PSI and Jensen-Shannon over their limits warn; true makes them fail the batch."""


class ValidationConfig(Thresholds):
    """Data validation of new batches (`ctx.validate_batch`): `[validation]`."""

    extra_columns: Literal["ignore", "warn", "error"] = "warn"
    """What a column that the reference does not have does to the batch."""
    ignore_columns: list[str] = Field(default_factory=list)
    """Columns left out of validation (identifiers, calendar columns that move by design)."""
    reference_batches: int = Field(default=3, ge=1)
    """How many accepted batches before a new one form its reference."""
    min_row_ratio: float = 0.2
    """A batch fails with fewer rows than this share of the reference batches' median (an
    empty or one-row batch)."""
    max_row_ratio: float = 5.0
    """A batch fails with more rows than this many times the reference batches' median."""
    max_duplicate_rate_increase: float = 0.05
    """A batch fails when its share of fully duplicated rows exceeds the reference's by more
    than this."""
    max_label_share_shift: float = 0.15
    """A batch carrying a label of classes fails when a class's share lies further than this
    outside the range of shares the earlier batches had; a constant label always fails."""
    columns: dict[str, Thresholds] = Field(default_factory=dict)
    """Limits for one column, over the ones above: `[validation.columns.NAME]`."""

    def for_column(self, name: str) -> Thresholds:
        """The global limits, with what `[validation.columns.NAME]` sets on top."""
        if name not in self.columns:
            return self
        return self.model_copy(update=self.columns[name].model_dump(exclude_unset=True))


class GatesConfig(_Section):
    """When a challenger may replace the champion: `[gates]` in esteira.toml."""

    metric: str = ""
    """The metric compared with the champion, on the same, newest test data; by default the
    task's (binary: roc_auc, multiclass: log_loss, regression: rmse)."""
    tolerance: float = 0.0
    """How much worse than the champion the challenger may be on `metric`."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """Absolute limits on the challenger's test metrics: a floor for metrics where greater is
    better (roc_auc), a ceiling for the others (log_loss, rmse; on its size for bias)."""
    segment: str | None = None
    """A column (e.g. origin airport): no segment may fall behind the champion's by more than
    `segment_tolerance`."""
    segment_tolerance: float = 0.02
    """How much worse than the champion's the challenger's `metric` may be in one segment."""
    min_segment_rows: int = 200
    """Segments with fewer test rows are not compared (too few to judge)."""
    latency_budget_ms: float | None = Field(default=None, gt=0)
    """Most milliseconds the model, loaded from the registry in a fresh process with the
    service's threads, may take to predict its input example (median of many calls after
    warm-up): a serving objective. Unset, the budget is relative (`latency_budget_ratio`)."""
    latency_budget_ratio: float = Field(default=2.0, ge=1)
    """Without `latency_budget_ms`: the fresh process's median may be at most this many times
    the median measured in the gating process (same example, same threads), plus
    `latency_slack_ms`."""
    latency_slack_ms: float = Field(default=5.0, ge=0)
    """Noise allowed on top of the relative budget (a busy machine, a context switch)."""
    check_compatibility: bool = True
    """Load the challenger from the registry in a fresh process and time a prediction;
    false skips this gate."""


class TriggersConfig(_Section):
    """When continuous training retrains: `[ct.triggers]`; a trigger left unset is off."""

    cron: str | None = None
    """Retrain on a schedule, e.g. "0 3 * * 1" (Mondays 03:00) or "0 0 1 */3 *" (quarterly)."""
    new_data: bool = False
    """Retrain whenever `batch_table` has a batch the champion was not trained on."""
    drift_share: float | None = None
    """Retrain when at least this share of the model's features drifted in the newest batch."""
    performance_below: float | None = None
    """Retrain when the champion's `metric` on the newest labelled batch is worse than this
    (below it for metrics where greater is better, above it for the others)."""


class CTConfig(_Section):
    """Continuous training of one model: `[ct]` in esteira.toml."""

    model: str = ""
    """The registered model CT trains and watches; also the default `--model` of serve,
    predict and monitor."""
    pipeline: str = "train"
    """The pipeline a CT run runs."""
    batch_param: str = "end"
    """The pipeline parameter that names the newest batch to train on."""
    batch_only_params: dict[str, Any] = Field(default_factory=dict)
    """Extra parameters that make the pipeline cover only that batch (for monitoring)."""
    batch_table: str = ""
    """The lake table new batches land in (the `new_data` trigger and replay read it)."""
    batch_column: str = "batch"
    """The column of `batch_table` that labels each row's batch."""
    batch_period: Literal["hour", "day", "week", "month", "integer"] | None = None
    """How batches are labelled: hour (2013-04-05T13), day (2013-04-05), week (2013-W14),
    month (2013-04) or integer (7, ordered as numbers); inferred from the labels when unset."""
    data_output: str = "features"
    """The pipeline output holding the features and the label of the batches it covers."""
    reference_output: str = "train_set"
    """The pipeline output the model learned from: the reference for drift."""
    label: str = "label"
    """The column holding the true outcome (monitoring, replay, `esteira.steps.promote`)."""
    metric: str = ""
    """The metric monitoring reports and the performance trigger watches; by default the
    task's (binary: roc_auc, multiclass: log_loss, regression: rmse)."""
    interval_s: float = 60.0
    """Seconds between the controller's checks of its triggers (`esteira ct start`)."""
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    """When to retrain: `[ct.triggers]`."""


class EnvironmentSection(_Section):
    """One environment (dev, staging, prod, or any other): `[environments.NAME]`. Each has
    its own stores, so models, runs and data of one never mix with another's."""

    home: str = ""
    """Folder of its embedded stores, relative to the project (default: `.esteira` for dev,
    `.esteira/environments/NAME` for the others; `ESTEIRA_HOME` moves `.esteira`)."""
    tracking_uri: str = ""
    """Its MLflow tracking server (default: `[tracking] uri`, else SQLite in its home)."""
    registry_uri: str = ""
    """Its MLflow model registry (default: its tracking URI)."""
    metadata_url: str = ""
    """Its metadata store (default: `[metadata] url`, else SQLite in its home)."""
    promotion: Literal["gates", "cd", "approval"] = "gates"
    """What makes a version champion here: `gates`, the pipeline's gates (dev); `cd`, passing
    `esteira cd` (staging); `approval`, a person's `esteira promote --approve` (prod)."""
    promote_from: str = ""
    """The environment whose versions are promoted here, copied into this one's registry
    (prod: `staging`); empty: versions trained here."""
    cd_passes: int = Field(default=1, ge=1)
    """With `promote_from`: how many passing `esteira cd` runs there a version needs before
    it may be promoted here."""
    releases: bool = False
    """Runs here import the deployed release (`esteira deploy`), never the working tree; on
    by default for staging and prod."""

    @model_validator(mode="before")
    @classmethod
    def _former_approval(cls, raw: Any) -> Any:
        """`approval = true` was the former spelling of `promotion = "approval"`."""
        if isinstance(raw, dict) and "approval" in raw and "promotion" not in raw:
            raw = dict(raw)
            raw["promotion"] = "approval" if raw.pop("approval") else "gates"
        return raw

    @property
    def approval(self) -> bool:
        return self.promotion == "approval"


DEFAULT_ENVIRONMENTS = {
    "dev": EnvironmentSection(),
    "staging": EnvironmentSection(promotion="cd", releases=True),
    "prod": EnvironmentSection(promotion="approval", promote_from="staging", releases=True),
}


class PipelineSection(_Section):
    """One pipeline: `[pipelines.NAME]`."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Its parameters' values, over the defaults in code: `[pipelines.NAME.params]`."""


class CISection(_Section):
    """The ML test battery, `esteira ci`: `[ci]`."""

    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Parameters per pipeline for its CI runs, over `[pipelines.NAME.params]`: a small
    sample that runs in seconds, e.g. `[ci.params.train]` with `rows = 500`."""
    tolerance: float = Field(default=1e-6, ge=0)
    """Relative difference two runs' predictions may have and still count as reproducible."""


class CDSection(_Section):
    """The CD gates, `esteira cd`: `[cd]`. The load test is relative: the candidate against
    the champion measured in the same run, because absolute times are noise on a shared
    machine; absolute limits are optional."""

    requests: int = Field(default=300, ge=10, le=100_000)
    """Requests the load test sends to each of the candidate's and the champion's services."""
    clients: int = Field(default=4, ge=1, le=64)
    """Concurrent clients of the load test."""
    max_p99_ratio: float = Field(default=1.5, ge=1)
    """The candidate's p99 latency may be at most this many times the champion's ..."""
    p99_slack_ms: float = Field(default=5.0, ge=0)
    """... plus this many milliseconds of noise."""
    max_p99_ms: float | None = Field(default=None, gt=0)
    """An absolute ceiling on the candidate's p99 latency, in milliseconds."""
    min_requests_per_s: float | None = Field(default=None, gt=0)
    """An absolute floor on the candidate's throughput."""
    max_error_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of the load test's requests that may fail."""
    timeout_s: float = Field(default=300.0, gt=0)
    """Most seconds a service may take to load its model, and the load test to run."""
    canary_min_requests: int = Field(default=100, ge=1)
    """Requests the canary must have answered before `esteira cd canary` judges it."""


class Config(_Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    metadata: MetadataSection = Field(default_factory=MetadataSection)
    lake: LakeSection = Field(default_factory=LakeSection)
    model: ModelSection = Field(default_factory=ModelSection)
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    serving: ServingSection = Field(default_factory=ServingSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    pipelines: dict[str, PipelineSection] = Field(default_factory=dict)
    environments: dict[str, EnvironmentSection] = Field(default_factory=dict)
    """dev, staging and prod exist without a section; a section changes one or adds one."""
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    ct: CTConfig = Field(default_factory=CTConfig)
    ci: CISection = Field(default_factory=CISection)
    cd: CDSection = Field(default_factory=CDSection)


class Settings(BaseModel):
    """Resolved settings: every location absolute, every override applied."""

    root: Path
    name: str
    modules: list[str]
    paths: list[Path]
    env: str
    environment: EnvironmentSection
    release: str = ""
    """The release whose code this project was loaded from ("": the working tree)."""
    home: Path
    """This environment's embedded stores."""
    homes: Path
    """The folder every environment's default home is in: `ESTEIRA_HOME`, else `.esteira`."""
    tracking_uri: str
    registry_uri: str
    experiment: str
    metadata_url: str
    lake_path: Path | str
    """A folder, or a URL on object storage (s3://bucket/prefix)."""
    artifacts_path: Path
    mlflow_artifacts_path: Path
    trusted_types: list[str]
    pipeline_params: dict[str, dict[str, Any]]
    model: ModelSection
    runtime: RuntimeSection
    serving: ServingSection
    monitoring: MonitoringSection
    validation: ValidationConfig
    gates: GatesConfig
    ct: CTConfig
    ci: CISection
    cd: CDSection


def load_settings(
    root: str | os.PathLike[str], environ: dict[str, str] | None = None, home: Path | None = None
) -> Settings:
    """Read `<root>/esteira.toml` (optional) and apply environment overrides. `home`: the
    environment's home, already resolved (a release's code keeps its project's stores)."""
    env = os.environ if environ is None else environ
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"project folder {root} does not exist; pass --project DIR")
    config = with_environment(read_config(root / CONFIG_FILE), env)
    check_settings(config.model.task, _named_metrics(config))
    env_name = env.get(ENV_VARIABLE) or DEFAULT_ENVIRONMENT
    environment = _environment(config, env_name, root)
    homes = Path(env.get(HOME_VARIABLE) or root / ".esteira").resolve()
    home = (home or _home(root, homes, env_name, environment)).resolve()
    # The environment variables override everything; then the environment's own settings.
    tracking_uri = (
        env.get(ENVIRONMENT["tracking.uri"])
        or environment.tracking_uri
        or config.tracking.uri
        or f"sqlite:///{home / 'mlflow.db'}"
    )
    registry_uri = (
        env.get(ENVIRONMENT["tracking.registry_uri"])
        or environment.registry_uri
        or config.tracking.registry_uri
        or tracking_uri
    )
    metadata_url = (
        env.get(ENVIRONMENT["metadata.url"])
        or environment.metadata_url
        or config.metadata.url
        or f"sqlite:///{home / 'esteira.db'}"
    )
    name = config.project.name or root.name
    return Settings(
        root=root,
        name=name,
        modules=config.project.modules,
        paths=[(root / p).resolve() for p in config.project.paths],
        env=env_name,
        environment=environment,
        home=home,
        homes=homes,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        experiment=config.tracking.experiment or name,
        metadata_url=metadata_url,
        lake_path=_lake(root, config.lake.path, home / "lake"),
        artifacts_path=home / "artifacts",
        mlflow_artifacts_path=home / "mlartifacts",
        trusted_types=[*DEFAULT_TRUSTED_TYPES, *config.model.trusted_types],
        pipeline_params={name: p.params for name, p in config.pipelines.items()},
        model=config.model,
        runtime=config.runtime,
        serving=config.serving,
        monitoring=config.monitoring,
        validation=config.validation,
        gates=config.gates,
        ct=config.ct,
        ci=config.ci,
        cd=config.cd,
    )


def store_variables(settings: Settings) -> dict[str, str]:
    """The environment variables under which another process (a service, a fresh loader)
    resolves exactly these stores, in this environment."""
    return {
        ENV_VARIABLE: settings.env,
        HOME_VARIABLE: str(settings.homes),
        ENVIRONMENT["tracking.uri"]: settings.tracking_uri,
        ENVIRONMENT["tracking.registry_uri"]: settings.registry_uri,
        ENVIRONMENT["metadata.url"]: settings.metadata_url,
        ENVIRONMENT["lake.path"]: str(settings.lake_path),
    }


def environments_of(root: Path) -> dict[str, EnvironmentSection]:
    """Every environment of the project at `root`: dev, staging, prod and those of
    `[environments.NAME]`, as configured."""
    return {**DEFAULT_ENVIRONMENTS, **read_config(root / CONFIG_FILE).environments}


def _environment(config: Config, name: str, root: Path) -> EnvironmentSection:
    known = {**DEFAULT_ENVIRONMENTS, **config.environments}
    if name not in known:
        raise ConfigError(
            f"no environment '{name}' in {root / CONFIG_FILE} (environments: "
            f"{', '.join(known)}); add [environments.{name}] or pick one with --env"
        )
    source = known[name].promote_from
    if source and (source not in known or source == name):
        raise ConfigError(
            f"[environments.{name}] promote_from = '{source}' in {root / CONFIG_FILE} must name "
            f"another environment ({', '.join(e for e in known if e != name)})"
        )
    return known[name]


def _home(root: Path, homes: Path, name: str, environment: EnvironmentSection) -> Path:
    if environment.home:
        return root / environment.home
    return homes if name == DEFAULT_ENVIRONMENT else homes / "environments" / name


def _named_metrics(config: Config) -> dict[str, str]:
    """The metrics that settings name, to be checked against the task."""
    named = {"[gates] metric": config.gates.metric, "[ct] metric": config.ct.metric}
    named |= {f"[gates] thresholds.{name}": name for name in config.gates.thresholds}
    return {setting: name for setting, name in named.items() if name}


def with_environment(config: Config, env: Mapping[str, str]) -> Config:
    """`config` with the keys that environment variables set (`ENVIRONMENT`) replaced."""
    changes: dict[str, dict[str, str]] = {}
    for key, variable in ENVIRONMENT.items():
        if env.get(variable):
            section, name = key.split(".")
            changes.setdefault(section, {})[name] = env[variable]
    updated = {s: getattr(config, s).model_copy(update=kv) for s, kv in changes.items()}
    return config.model_copy(update=updated)


def _lake(root: Path, value: str, default: Path) -> Path | str:
    """A URL as it is (object storage); a folder relative to the project."""
    if "://" in value:
        return value
    return (root / value).resolve() if value else default


def read_config(path: Path) -> Config:
    """The settings `path` holds (all defaults when it does not exist), checked."""
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    if "models" in raw and "model" not in raw:  # the section's former name
        raw["model"] = raw.pop("models")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(explain(path, e, Config, raw)) from None
