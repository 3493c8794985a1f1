"""The maturity scorecard: where a project stands on the three levels of the MLOps maturity
model, from evidence in its stores and files (runs, decisions, records, deployments, CI
files), never from settings alone. Each item names its evidence or what is missing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esteira.project import Project

CI_FILES = (".github/workflows/*.yml", ".github/workflows/*.yaml", "azure-pipelines.yml",
            "azure-pipelines.yaml")  # fmt: skip


@dataclass(frozen=True)
class Item:
    level: int
    name: str
    met: bool
    evidence: str
    """What shows it (counts, ids, dates), or what is missing and how to get it."""


@dataclass(frozen=True)
class Scorecard:
    project: str
    items: list[Item]

    @property
    def level(self) -> int:
        """The highest level whose items, and those of every level below, are all met."""
        reached = -1
        for level in (0, 1, 2):
            if not all(i.met for i in self.items if i.level == level):
                break
            reached = level
        return reached

    def missing(self) -> list[Item]:
        """What the next level still needs."""
        return [i for i in self.items if i.level == self.level + 1 and not i.met]

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "level": self.level,
                "items": [vars(i) for i in self.items]}  # fmt: skip


def score(project: Project, others: dict[str, Project]) -> Scorecard:
    """`project`'s scorecard, from the evidence in its stores and in those of its other
    environments (`others`: staging, prod) whose stores exist."""
    from esteira.metadata import (
        AliasChange,
        CDDecision,
        CTRun,
        Deployment,
        GateDecision,
        ModelVersionRecord,
        MonitoringRecord,
        PipelineRun,
        StepIO,
    )

    every = [project, *others.values()]  # a project's evidence is in any of its environments

    def tally(column: Any, *where: Any) -> tuple[int, datetime | None]:
        found = [p.metadata.tally(column, *where) for p in every]
        return sum(c for c, _ in found), max((n for _, n in found if n), default=None)

    def counted(level: int, name: str, found: tuple[int, Any], what: str, fix: str) -> Item:
        count, newest = found
        if not count:
            return Item(level, name, False, fix)
        when = f", newest {newest:%Y-%m-%d %H:%M}" if isinstance(newest, datetime) else ""
        return Item(level, name, True, f"{count} {what}{when}")

    tables = sorted({t for p in every for t in p.lake.tables()})
    items = [
        counted(
            0,
            "runs tracked",
            tally(PipelineRun.started_at, PipelineRun.mlflow_run_id.isnot(None)),
            "pipeline runs with MLflow runs",
            "run a pipeline: esteira run PIPELINE",
        ),
        counted(
            0,
            "models registered with lineage",
            tally(ModelVersionRecord.created_at),
            "model versions registered by runs",
            "register a model from a step (ctx.log_model)",
        ),
        counted(
            0,
            "data validated",
            tally(StepIO.id, StepIO.name.like("validation/%")),
            "batch validation reports",
            "validate batches as they land (ctx.validate_batch)",
        ),
        counted(
            1,
            "model gates",
            tally(GateDecision.at),
            "gate decisions",
            "judge versions with the gates (the built-in promote step)",
        ),
        _present(
            1,
            "feature store",
            [t for t in tables if t.startswith("features_")],
            "materialize feature views (ctx.features.materialize)",
        ),
        counted(
            1,
            "continuous training",
            tally(CTRun.at),
            "CT runs fired by triggers",
            "configure [ct] and [ct.triggers], then esteira ct start",
        ),
        _present(
            1,
            "service with a prediction log",
            [t for t in tables if t.startswith("predictions_")],
            "serve the champion: esteira serve",
        ),
        counted(
            1,
            "monitoring",
            tally(MonitoringRecord.at),
            "monitoring records",
            "monitor served or scored data: esteira monitor",
        ),
        _ci_files(project.root),
        counted(
            2,
            "releases deployed",
            tally(Deployment.at),
            "deployment(s) of releases",
            "esteira release, then esteira deploy RELEASE --env staging",
        ),
        counted(
            2,
            "CD gates passed",
            tally(CDDecision.at, CDDecision.passed.is_(True)),
            "passing run(s) of the CD gates (smoke and load test)",
            "esteira cd --env staging",
        ),
        counted(
            2,
            "prod promotions approved",
            tally(AliasChange.at, AliasChange.action == "approve"),
            "approved promotions",
            'esteira promote --env prod --approve --reason "..."',
        ),
    ]
    return Scorecard(project.name, items)


def _present(level: int, name: str, found: list[str], fix: str) -> Item:
    if not found:
        return Item(level, name, False, fix)
    return Item(level, name, True, "lake tables " + ", ".join(sorted(found)[:4]))


def _ci_files(root: Path) -> Item:
    """CI files that call `esteira ci`, in the project or the repository around it."""
    folders = [root, *root.parents][:4]
    found = [
        f for folder in folders for pattern in CI_FILES for f in folder.glob(pattern)
        if "esteira ci" in f.read_text(encoding="utf-8", errors="replace")
    ]  # fmt: skip
    if not found:
        fix = "a CI workflow (GitHub Actions, Azure Pipelines) that calls esteira ci"
        return Item(2, "CI runs the ML test battery", False, fix)
    return Item(2, "CI runs the ML test battery", True, ", ".join(str(f) for f in found[:3]))


def other_environments(project: Project) -> dict[str, Project]:
    """The project's other environments whose stores exist (looking creates none)."""
    import os

    from esteira.config import ENV_VARIABLE, HOME_VARIABLE, environments_of
    from esteira.project import open_project

    homes = {HOME_VARIABLE: str(project.settings.homes)}  # where this one's home was moved
    found = {}
    for name in environments_of(project.root):
        if name == project.settings.env:
            continue
        environ = {**os.environ, **homes, ENV_VARIABLE: name}
        other = open_project(project.root, environ, project.read_only)
        url = other.settings.metadata_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            continue
        found[name] = other
    return found
