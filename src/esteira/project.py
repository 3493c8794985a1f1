"""A project: a folder with `esteira.toml` and the Python modules that define its pipelines."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.config import Settings, load_settings
from esteira.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from esteira.features import FeatureService, FeatureStore, FeatureView
    from esteira.lake import Lake
    from esteira.metadata import MetadataStore
    from esteira.pipelines.artifacts import ArtifactStore
    from esteira.pipelines.dag import Pipeline
    from esteira.pipelines.runner import RunResult, StepEvent
    from esteira.tracking import Tracker

DEFAULT_MODULE = "pipelines"


class Project:
    """Settings, pipelines and the stores of one project; stores open on first use."""

    def __init__(
        self,
        settings: Settings,
        pipelines: Mapping[str, Pipeline],
        feature_views: Mapping[str, FeatureView] | None = None,
        feature_services: Mapping[str, FeatureService] | None = None,
    ) -> None:
        self.settings = settings
        self.pipelines = dict(pipelines)
        self.feature_views = dict(feature_views or {})
        self.feature_services = dict(feature_services or {})

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def root(self) -> Path:
        return self.settings.root

    def pipeline(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise NotFound(
                f"project '{self.name}' has no pipeline '{name}' (pipelines: {known})"
            ) from None

    @cached_property
    def metadata(self) -> MetadataStore:
        from esteira.metadata import MetadataStore

        self.settings.home.mkdir(parents=True, exist_ok=True)
        return MetadataStore(self.settings.metadata_url)

    @cached_property
    def features(self) -> FeatureStore:
        from esteira.features import FeatureStore

        return FeatureStore(self.feature_views, self.lake, self.settings.home / "online.db")

    @cached_property
    def lake(self) -> Lake:
        from esteira.lake import Lake

        return Lake(self.settings.lake_path)

    @cached_property
    def tracker(self) -> Tracker:
        from esteira.tracking import Tracker

        self.settings.home.mkdir(parents=True, exist_ok=True)
        s = self.settings
        return Tracker(
            s.tracking_uri, s.registry_uri, s.experiment, s.mlflow_artifacts_path, s.trusted_types
        )

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from esteira.pipelines.artifacts import ArtifactStore
        from esteira.tracking import save_model

        return ArtifactStore(
            self.settings.artifacts_path,
            partial(save_model, trusted_types=self.settings.trusted_types),
        )

    def run(
        self,
        pipeline: str,
        params: Mapping[str, Any] | None = None,
        only: str | None = None,
        use_cache: bool = True,
        trigger: str = "manual",
        trigger_reason: str = "",
        on_event: Callable[[StepEvent], None] | None = None,
        until: str | None = None,
    ) -> RunResult:
        """Run a pipeline (or `only` one step, or the steps `until` one needs); parameters:
        code defaults < esteira.toml < `params`."""
        from esteira.pipelines.params import resolve_params
        from esteira.pipelines.runner import Runner

        p = self.pipeline(pipeline)
        resolved = resolve_params(p, self.settings.pipeline_params.get(pipeline, {}), params or {})
        return Runner(self, on_event).run(
            p, resolved, only, use_cache, trigger, trigger_reason, until
        )


def load_project(path: str | Path = ".", environ: Mapping[str, str] | None = None) -> Project:
    """Read a project's settings and import the modules that define its pipelines."""
    settings = load_settings(path, dict(environ) if environ is not None else None)
    return Project(settings, *_import_definitions(settings))


def open_project(path: str | Path = ".") -> Project:
    """A project's settings and stores without importing its code: enough to inspect runs."""
    return Project(load_settings(path), {})


def _import_definitions(
    settings: Settings,
) -> tuple[dict[str, Pipeline], dict[str, FeatureView], dict[str, FeatureService]]:
    """Import the project's modules; collect the pipelines and feature views and services
    they define."""
    from esteira.features import FeatureService, FeatureView
    from esteira.pipelines.dag import Pipeline

    modules = settings.modules or [DEFAULT_MODULE]
    root = str(settings.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    found: dict[str, Pipeline] = {}
    views: dict[str, FeatureView] = {}
    services: dict[str, FeatureService] = {}
    for name in modules:
        _forget(name, settings.root)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name.split(".")[0] and e.name != name:
                raise
            raise ConfigError(
                f"cannot import pipeline module '{name}' from {settings.root}; create "
                f"{name.replace('.', '/')}.py there or set [project] modules in esteira.toml"
            ) from None
        for value in vars(module).values():
            if isinstance(value, Pipeline):
                found[value.name] = value
            elif isinstance(value, FeatureView):
                views[value.name] = value
            elif isinstance(value, FeatureService):
                services[value.name] = value
    if not found:
        raise ConfigError(f"modules {modules} of project {settings.root} define no pipeline")
    return found, views, services


def _forget(module: str, root: Path) -> None:
    """Drop an earlier import of `module` (and its package) so this project's code is read
    fresh: two projects may both have a `pipelines` module, and code may have changed."""
    top = module.split(".")[0]
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[name]
