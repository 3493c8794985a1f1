"""A project: a folder with `esteira.toml` and the Python modules that define its pipelines."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.config import Settings, load_settings
from esteira.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from esteira.artifacts import ArtifactStore
    from esteira.features import FeatureService, FeatureStore, FeatureView
    from esteira.lake import Lake
    from esteira.metadata import MetadataStore
    from esteira.pipelines.dag import Pipeline
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
        read_only: bool = False,
    ) -> None:
        self.settings = settings
        self.read_only = read_only
        """Look, never write: stores that exist are opened read-only, none is created."""
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

        if self.read_only:
            return MetadataStore(self.settings.metadata_url, read_only=True)
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

        if not self.read_only:
            self.settings.home.mkdir(parents=True, exist_ok=True)
        s = self.settings
        return Tracker(
            s.tracking_uri, s.registry_uri, s.experiment, s.mlflow_artifacts_path, s.trusted_types
        )

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from esteira.artifacts import ArtifactStore
        from esteira.tracking import load_model, save_model

        return ArtifactStore(
            self.settings.artifacts_path,
            partial(save_model, trusted_types=self.settings.trusted_types),
            load_model,
        )


def load_project(path: str | Path = ".", environ: Mapping[str, str] | None = None) -> Project:
    """Read a project's settings and import the modules that define its pipelines: from
    the working tree, or, in an environment that runs releases (staging, prod), from the
    release deployed there, with that release's esteira.toml."""
    env = dict(os.environ if environ is None else environ)
    settings = load_settings(path, env)
    if settings.environment.releases:
        from esteira import releases

        release = releases.require_active(settings, Project(settings, {}).metadata)
        pinned = env | {"ESTEIRA_ENV": settings.env, "ESTEIRA_HOME": str(settings.homes)}
        settings = load_settings(releases.code_root(settings, release), pinned, settings.home)
        settings = settings.model_copy(update={"release": release.id})
    return Project(settings, *_import_definitions(settings))


def open_project(
    path: str | Path = ".", environ: Mapping[str, str] | None = None, read_only: bool = False
) -> Project:
    """A project's settings and stores without importing its code: enough to inspect runs
    (`read_only`: and never to change them)."""
    settings = load_settings(path, dict(environ) if environ is not None else None)
    return Project(settings, {}, read_only=read_only)


def _import_definitions(
    settings: Settings,
) -> tuple[dict[str, Pipeline], dict[str, FeatureView], dict[str, FeatureService]]:
    """Import the project's modules; collect the pipelines and feature views and services
    they define."""
    from esteira.features import FeatureService, FeatureView
    from esteira.pipelines.dag import Pipeline

    modules = settings.modules or [DEFAULT_MODULE]
    folders = [settings.root, *settings.paths]
    for folder in reversed(folders):  # the project's own come first
        if not folder.is_dir():
            raise ConfigError(f"[project] paths: {folder} is not a folder")
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.path.insert(0, str(folder))
    _forget({*(m.split(".")[0] for m in modules), *_top_level_names(folders)})
    importlib.invalidate_caches()
    found: dict[str, Pipeline] = {}
    views: dict[str, FeatureView] = {}
    services: dict[str, FeatureService] = {}
    for name in modules:
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


def _top_level_names(folders: list[Path]) -> set[str]:
    """The packages and modules importable from `folders`."""
    names = set()
    for folder in folders:
        for entry in folder.iterdir():
            if entry.suffix == ".py" or (entry / "__init__.py").exists():
                names.add(entry.stem)
    return names


def _forget(tops: set[str]) -> None:
    """Drop earlier imports of these packages and modules so this project's code is read
    fresh and from its own folders: two projects may both have a `pipelines` module, the
    code may have changed, and shared code may come from another copy of a project."""
    tops = tops - {__name__.split(".")[0]}  # never esteira itself
    for name in [m for m in sys.modules if m.split(".")[0] in tops]:
        del sys.modules[name]
