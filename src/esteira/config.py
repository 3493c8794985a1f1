"""Project configuration: `esteira.toml` with laptop defaults, overridden by environment variables.

Every path defaults to the project's `.esteira/` folder, so a project runs whole on one
machine; pointing `MLFLOW_TRACKING_URI` or `metadata.url` at a server moves one component.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from esteira.errors import ConfigError

CONFIG_FILE = "esteira.toml"

# Types inside common scikit-learn models that skops does not trust by default. esteira trusts
# these deliberately (they hold only arrays); anything else must be listed by the project.
DEFAULT_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectSection(_Section):
    name: str = ""
    modules: list[str] = Field(default_factory=list)
    """Python modules (importable from the project folder) that define the pipelines."""


class TrackingSection(_Section):
    uri: str = ""
    registry_uri: str = ""
    experiment: str = ""


class MetadataSection(_Section):
    url: str = ""


class LakeSection(_Section):
    path: str = ""


class ModelsSection(_Section):
    trusted_types: list[str] = Field(default_factory=list)
    """Extra types that model serialization (skops) may load, beyond esteira's defaults."""


class Thresholds(_Section):
    """Data validation limits: `[validation]`, and `[validation.columns.NAME]` per column."""

    max_null_rate_increase: float = 0.2
    max_unseen_category_rate: float = 0.1
    max_out_of_range_rate: float = 0.5
    max_mean_shift_std: float = 4.0
    max_psi: float = 0.25
    max_js: float = 0.2
    block_on_drift: bool = False
    """PSI and Jensen-Shannon over their limits warn; true makes them fail the batch."""


class ValidationConfig(Thresholds):
    extra_columns: Literal["ignore", "warn", "error"] = "warn"
    ignore_columns: list[str] = Field(default_factory=list)
    reference_batches: int = Field(default=3, ge=1)
    """How many accepted batches before a new one form its reference."""
    columns: dict[str, Thresholds] = Field(default_factory=dict)

    def for_column(self, name: str) -> Thresholds:
        """The global limits, with what `[validation.columns.NAME]` sets on top."""
        if name not in self.columns:
            return self
        return self.model_copy(update=self.columns[name].model_dump(exclude_unset=True))


class GatesConfig(_Section):
    """When a challenger may replace the champion: `[gates]` in esteira.toml."""

    metric: str = "roc_auc"
    """The metric compared with the champion, on the same, newest test data."""
    tolerance: float = 0.0
    """How much worse than the champion the challenger may be on `metric`."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """Absolute limits on the challenger's test metrics: a floor for metrics where greater is
    better (roc_auc), a ceiling for the others (log_loss)."""
    segment: str | None = None
    """A column (e.g. origin airport): no segment may fall behind the champion's by more than
    `segment_tolerance`."""
    segment_tolerance: float = 0.02
    min_segment_rows: int = 200
    latency_budget_ms: float = 100.0
    """Median time for the model, loaded in a fresh process from the registry, to predict its
    input example."""
    check_compatibility: bool = True


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
    pipeline: str = "train"
    batch_param: str = "end"
    """The pipeline parameter that names the newest batch to train on."""
    batch_only_params: dict[str, Any] = Field(default_factory=dict)
    """Extra parameters that make the pipeline cover only that batch (for monitoring)."""
    batch_table: str = ""
    batch_column: str = "batch"
    data_output: str = "features"
    """The pipeline output holding the features and the label of the batches it covers."""
    reference_output: str = "train_set"
    """The pipeline output the model learned from: the reference for drift."""
    label: str = "label"
    metric: str = "roc_auc"
    interval_s: float = 60.0
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)


class PipelineSection(_Section):
    params: dict[str, Any] = Field(default_factory=dict)


class Config(_Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    metadata: MetadataSection = Field(default_factory=MetadataSection)
    lake: LakeSection = Field(default_factory=LakeSection)
    models: ModelsSection = Field(default_factory=ModelsSection)
    pipelines: dict[str, PipelineSection] = Field(default_factory=dict)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    ct: CTConfig = Field(default_factory=CTConfig)


class Settings(BaseModel):
    """Resolved settings: every location absolute, every override applied."""

    root: Path
    name: str
    modules: list[str]
    home: Path
    tracking_uri: str
    registry_uri: str
    experiment: str
    metadata_url: str
    lake_path: Path
    artifacts_path: Path
    mlflow_artifacts_path: Path
    trusted_types: list[str]
    pipeline_params: dict[str, dict[str, Any]]
    validation: ValidationConfig
    gates: GatesConfig
    ct: CTConfig


def load_settings(root: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Settings:
    """Read `<root>/esteira.toml` (optional) and apply environment overrides."""
    env = os.environ if environ is None else environ
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"project folder {root} does not exist; pass --project DIR")
    config = _read_config(root / CONFIG_FILE)
    home = Path(env.get("ESTEIRA_HOME") or root / ".esteira").resolve()
    tracking_uri = (
        env.get("MLFLOW_TRACKING_URI") or config.tracking.uri or f"sqlite:///{home / 'mlflow.db'}"
    )
    name = config.project.name or root.name
    return Settings(
        root=root,
        name=name,
        modules=config.project.modules,
        home=home,
        tracking_uri=tracking_uri,
        registry_uri=env.get("MLFLOW_REGISTRY_URI") or config.tracking.registry_uri or tracking_uri,
        experiment=env.get("MLFLOW_EXPERIMENT_NAME") or config.tracking.experiment or name,
        metadata_url=env.get("ESTEIRA_METADATA_URL")
        or config.metadata.url
        or f"sqlite:///{home / 'esteira.db'}",
        lake_path=_resolve(root, env.get("ESTEIRA_LAKE") or config.lake.path, home / "lake"),
        artifacts_path=home / "artifacts",
        mlflow_artifacts_path=home / "mlartifacts",
        trusted_types=[*DEFAULT_TRUSTED_TYPES, *config.models.trusted_types],
        pipeline_params={name: p.params for name, p in config.pipelines.items()},
        validation=config.validation,
        gates=config.gates,
        ct=config.ct,
    )


def _resolve(root: Path, value: str, default: Path) -> Path:
    return (root / value).resolve() if value else default


def _read_config(path: Path) -> Config:
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(path, e)) from None


def _explain(path: Path, error: ValidationError) -> str:
    lines = [f"{path} has {error.error_count()} invalid setting(s):"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  - '{key}': unknown key (check its spelling and section)")
        else:
            lines.append(f"  - '{key}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)
