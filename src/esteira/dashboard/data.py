"""What one environment's stores hold, for the dashboard: opened read-only, and a store
that does not exist yet is reported missing, never created.

The records the metadata store returns are read as they are (they are plain rows once
their session closes); this module adds what the pages need around them: the champion and
challenger with their key metric, MLflow UI links, counts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.errors import NotFound
from esteira.files import sqlite_path
from esteira.registry import CHALLENGER, CHAMPION, RUN_TAG

if TYPE_CHECKING:
    from esteira.cicd.maturity import Scorecard
    from esteira.config import Settings
    from esteira.metadata import (
        AliasChange,
        CDDecision,
        CTRun,
        GateDecision,
        MetadataStore,
        PipelineRun,
    )
    from esteira.project import Project
    from esteira.registry import Registry, VersionInfo

SHOWN_ALIASES = (CHAMPION, CHALLENGER)


@dataclass(frozen=True)
class MlflowLinks:
    """Addresses in the MLflow UI (`esteira ui`, on port 5000 by default)."""

    base: str

    def run(self, experiment_id: str | None, run_id: str) -> str:
        if not experiment_id or not run_id:
            return ""
        return f"{self.base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def version(self, name: str, version: str) -> str:
        return f"{self.base.rstrip('/')}/#/models/{name}/versions/{version}"


@dataclass(frozen=True)
class Held:
    """A version an alias points at."""

    alias: str
    version: str
    metric: str
    value: float | None
    since: datetime | None
    """When the alias last moved to it (None: moved outside esteira)."""
    run_id: str
    pipeline_run_id: str


@dataclass(frozen=True)
class ModelSummary:
    name: str
    held: list[Held]
    versions: int


@dataclass(frozen=True)
class Counts:
    pipeline_runs: int = 0
    ct_runs: int = 0
    gate_decisions: int = 0
    monitoring_records: int = 0
    alerts: int = 0


@dataclass(frozen=True)
class Gates:
    """A model's gate and CD decisions, newest first, and its alias history, oldest first."""

    decisions: Sequence[GateDecision]
    cd: Sequence[CDDecision]
    history: dict[str, Sequence[AliasChange]]


@dataclass(frozen=True)
class CTOutcome:
    run: CTRun
    led_to: str
    """What it led to: a new champion, the challenger refused and why, or the failure."""


class Environment:
    """One environment of a project, looked at and never written to."""

    def __init__(self, root: Path, name: str, environ: Mapping[str, str] | None = None) -> None:
        """`environ`: the variables that locate its stores (default: this process's), as
        a home of its own has them (the demo's, a replay policy's)."""
        from esteira.config import ENV_VARIABLE
        from esteira.project import open_project

        variables = os.environ if environ is None else environ
        self.project: Project = open_project(root, {**variables, ENV_VARIABLE: name},
                                             read_only=True)  # fmt: skip
        self.name = name
        self._experiment_id: str | None = None
        self._found: set[tuple[str, str]] = set()

    @property
    def settings(self) -> Settings:
        return self.project.settings

    @property
    def metadata(self) -> MetadataStore | None:
        """The metadata store, or None while no run has made it."""
        if not self._made(self.settings.metadata_url, "pipeline_runs"):
            return None
        return self.project.metadata

    @property
    def registry(self) -> Registry | None:
        """The model registry, or None while MLflow has no store here (opening one would
        make it)."""
        if not (self._made(self.settings.registry_uri, "registered_models")
                and self._made(self.settings.tracking_uri, "experiments")):  # fmt: skip
            return None
        return self._registry

    def _made(self, uri: str, table: str) -> bool:
        """Whether the database at `uri` exists and has `table`: a store made by a run.
        Once found, always (stores are not unmade)."""
        if (uri, table) not in self._found and _holds(uri, table):
            self._found.add((uri, table))
        return (uri, table) in self._found

    @cached_property
    def _registry(self) -> Registry:
        from esteira.registry import Registry

        return Registry(self.project)

    @property
    def experiment_id(self) -> str | None:
        """The MLflow experiment's id, for links to its runs (None before its first run)."""
        if self._experiment_id is None and self.registry is not None:
            found = self.registry.client.get_experiment_by_name(self.settings.experiment)
            self._experiment_id = found.experiment_id if found else None
        return self._experiment_id

    # what the pages read -----------------------------------------------------------------

    def models(self) -> list[str]:
        """The registered models, and `[ct] model` even before it is registered."""
        found = self.registry.models() if self.registry else []
        wanted = self.settings.ct.model
        return sorted({*found, wanted} if wanted else set(found))

    def summary(self, name: str) -> ModelSummary:
        registry = self.registry
        if registry is None or name not in registry.models():
            return ModelSummary(name, [], 0)
        held = []
        for alias in SHOWN_ALIASES:
            found = registry.by_alias(name, alias)
            if found is not None:  # with its run's metrics: two versions, not every one
                held.append(self._held(alias, registry.version(name, found.version)))
        return ModelSummary(name, held, len(registry.versions(name, with_metrics=False)))

    def _held(self, alias: str, version: VersionInfo) -> Held:
        metric = self.key_metric(version.tags)
        since = None
        if self.metadata is not None:
            moves = self.metadata.alias_history(version.name, alias)
            since = next((m.at for m in reversed(moves) if m.to_version == version.version), None)
        return Held(alias, version.version, metric, version.metrics.get(metric), since,
                    version.run_id, version.tags.get(RUN_TAG, ""))  # fmt: skip

    def key_metric(self, tags: dict[str, str]) -> str:
        """The metric a version is judged by: `[gates] metric`, else its task's default."""
        from esteira.metrics import TASK_TAG, default_metric

        task = self.settings.model.task or tags.get(TASK_TAG)
        return self.settings.gates.metric or (default_metric(task) if task else "")

    def counts(self) -> Counts:
        from esteira.metadata import Alert, CTRun, GateDecision, MonitoringRecord, PipelineRun

        store = self.metadata
        if store is None:
            return Counts()
        return Counts(*(store.tally(column)[0] for column in (
            PipelineRun.started_at, CTRun.at, GateDecision.at, MonitoringRecord.at,
            Alert.created_at)))  # fmt: skip

    def scorecard(self) -> Scorecard | None:
        """The maturity scorecard, from every environment whose stores exist."""
        from esteira.cicd.maturity import other_environments, score

        if self.metadata is None:
            return None
        return score(self.project, other_environments(self.project))

    def runs(self, limit: int = 50) -> Sequence[PipelineRun]:
        return self.metadata.runs(limit=limit) if self.metadata else []

    def run(self, run_id: str) -> PipelineRun:
        if self.metadata is None:
            raise NotFound(f"no runs yet in {self.name}: no run {run_id}")
        return self.metadata.run(run_id)

    def ct_runs(self, model: str, limit: int = 50) -> list[CTOutcome]:
        store = self.metadata
        if store is None:
            return []
        outcomes = []
        for run in store.ct_runs(model, limit):
            outcomes.append(CTOutcome(run, self._led_to(store, run)))
        return outcomes

    def _led_to(self, store: MetadataStore, run: CTRun) -> str:
        if run.status != "completed":
            return (run.error or run.status).strip().splitlines()[0]
        if run.champion_after and run.champion_after != run.champion_before:
            return f"version {run.champion_after} became champion"
        judged = store.gate_decisions(pipeline_run_id=run.pipeline_run_id, limit=1)
        if judged and not judged[0].passed:
            return judged[0].summary
        return f"champion kept ({run.champion_after or 'none'})"

    def gates(self, model: str, limit: int = 50) -> Gates:
        store = self.metadata
        if store is None:
            return Gates([], [], {})
        history = {alias: store.alias_history(model, alias) for alias in SHOWN_ALIASES}
        return Gates(store.gate_decisions(model, limit=limit), store.cd_decisions(model)[:limit],
                     {a: h for a, h in history.items() if h})  # fmt: skip


def _holds(uri: str, table: str) -> bool:
    """Whether the database at `uri` has `table`, looked at read-only: a SQLite file that
    is not there is not created, an empty database on a server is left empty."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    path = sqlite_path(uri)
    if path is not None:
        if not path.is_file():
            return False
        uri = f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true"
    try:
        engine = create_engine(uri)
    except (SQLAlchemyError, ImportError):
        return True  # the store's own opening says what is wrong with it
    try:
        with engine.connect() as con:
            return inspect(con).has_table(table)
    except SQLAlchemyError:
        return True
    finally:
        engine.dispose()
