"""`esteira init`: write a new project that works at once, from the templates beside this module.

A project is rendered from `templates/project` (the package folder `package` takes the
project's name) and the CI files of `templates/ci`. Files ending in `.tmpl` are filled in with
`string.Template` (`$name`, `$label`, ...: the task's `TaskTemplate`); the others, such as the
CI files whose own `${{ }}` and `$()` must stay as they are, are copied unchanged. The project
is written in a temporary folder beside the target and moved into place whole.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from esteira.errors import EsteiraError

NAME_RULE = "lower-case letters, digits and _, starting with a letter (e.g. demo_project)"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PACKAGE_FOLDER = "package"
"""The folder of `templates/project` that becomes the project's Python package."""
RENAMED = {"gitignore": ".gitignore"}
"""Template files whose name in the project differs (dotfiles are not shipped as package data)."""
CI_FILES = {
    "github": ("github.yml", ".github/workflows/esteira.yml"),
    "azure": ("azure-pipelines.yml", "azure-pipelines.yml"),
}
CI_CHOICES = (*CI_FILES, "both")


class ScaffoldError(EsteiraError):
    """A project cannot be created as asked."""


@dataclass(frozen=True)
class TaskTemplate:
    """What differs between the tasks in a new project: its label, model and gates."""

    label: str
    label_doc: str
    label_code: str
    """How `source.orders` computes the label from `minutes`, the delivery time."""
    estimator: str
    predict_fn: str
    metric: str
    threshold: str
    threshold_doc: str
    tolerance: str
    description: str


TASKS: dict[str, TaskTemplate] = {
    "binary": TaskTemplate(
        label="late",
        label_doc="`late`, 1 when it arrived after the 45 minutes promised, else 0",
        label_code="(minutes > 45).astype(int)",
        estimator="HistGradientBoostingClassifier",
        predict_fn="predict_proba",
        metric="roc_auc",
        threshold="0.8",
        threshold_doc="a floor: ROC AUC at least this",
        tolerance="0.01",
        description="Will an order arrive later than the 45 minutes promised?",
    ),
    "multiclass": TaskTemplate(
        label="punctuality",
        label_doc="`punctuality`, early (under 30 minutes), on_time or late (over 45)",
        label_code='np.select([minutes < 30, minutes > 45], ["early", "late"], "on_time")',
        estimator="HistGradientBoostingClassifier",
        predict_fn="predict_proba",
        metric="log_loss",
        threshold="0.9",
        threshold_doc="a ceiling: log loss at most this (a guess of the class shares: ~1.05)",
        tolerance="0.02",
        description="Will an order arrive early, on time or late?",
    ),
    "regression": TaskTemplate(
        label="minutes",
        label_doc="`minutes` from order to delivery",
        label_code="minutes.round(1)",
        estimator="HistGradientBoostingRegressor",
        predict_fn="predict",
        metric="rmse",
        threshold="10.0",
        threshold_doc="a ceiling: RMSE at most this many minutes",
        tolerance="0.3",
        description="How many minutes will an order take to arrive?",
    ),
}


def check_name(name: str) -> None:
    """A project's name is its Python package's, its MLflow model's and its feature views'
    prefix: a valid, lower-case identifier that shadows no module it imports."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"project name {name!r} is not allowed: use {NAME_RULE}")
    if name in sys.stdlib_module_names or name in {"esteira", "tests", PACKAGE_FOLDER}:
        raise ScaffoldError(
            f"project name {name!r} would hide the module of that name; use another ({NAME_RULE})"
        )


def create(name: str, parent: Path, task: str = "binary", ci: str = "both") -> Path:
    """Write the project `name` into `parent/name` and return its folder. The folder must not
    exist or be empty; nothing is left behind if writing fails."""
    check_name(name)
    if task not in TASKS:
        raise ScaffoldError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if ci not in CI_CHOICES:
        raise ScaffoldError(f"unknown CI {ci!r}: use one of {', '.join(CI_CHOICES)}")
    target = Path(parent).resolve() / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} exists and is not empty: pick another name or --dir")
    values = {"name": name, "task": task, "title": _title(name), **asdict(TASKS[task])}
    values["ci_doc"] = _ci_doc(ci)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{name}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        _write_tree(templates() / "project", staging, name, values)
        for source, destination in _chosen_ci(ci):
            _write(templates() / "ci" / source, staging / destination, values)
        if target.exists():
            target.rmdir()  # empty, checked above: the new tree takes its place whole
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def templates() -> Traversable:
    return resources.files(__package__) / "templates"


def _write_tree(folder: Traversable, into: Path, name: str, values: dict[str, str]) -> None:
    for entry in folder.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            child = name if entry.name == PACKAGE_FOLDER else entry.name
            _write_tree(entry, into / child, name, values)
        else:
            file_name = RENAMED.get(entry.name, entry.name).removesuffix(".tmpl")
            _write(entry, into / file_name, values)


def _write(template: Traversable, path: Path, values: dict[str, str]) -> None:
    text = template.read_text(encoding="utf-8")
    if template.name.endswith(".tmpl"):
        text = Template(text).substitute(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _chosen_ci(ci: str) -> list[tuple[str, str]]:
    return list(CI_FILES.values()) if ci == "both" else [CI_FILES[ci]]


def _ci_doc(ci: str) -> str:
    files = " and ".join(f"`{destination}`" for _, destination in _chosen_ci(ci))
    return (
        f"## CI/CD\n\n{files}: a pull request runs `esteira ci`; a merge to main builds a "
        "release, deploys it to staging and runs `esteira cd --env staging` (which trains a "
        "candidate with the release); prod waits for a person's approval (a GitHub "
        "environment with required reviewers, an Azure Pipelines environment with an approval "
        "check), then deploys the "
        "same release and promotes staging's champion. Staging and prod keep their stores "
        "between runs: run their jobs on a self-hosted runner or agent pool, or point "
        "`[environments.staging]` and `[environments.prod]` at shared servers."
    )


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()
