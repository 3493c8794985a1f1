"""A Databricks asset bundle of the project: `databricks.yml` and `resources/NAME.jobs.yml`.

One target per environment (dev in development mode: schedules paused, names prefixed; the
others in production mode), one job per `jobs.project_jobs`, each task the installed
`esteira` command (a Python wheel task on serverless compute) with `--project` the
project's synced folder and `--env` the target. The stores come from bundle variables set
per deployment, never from the files: MLflow is the workspace's own by default; the
metadata store (PostgreSQL) and the lake (object storage) must be given, their secrets as
`{{secrets/SCOPE/KEY}}` references.

    databricks bundle deploy -t staging --var metadata_url=... --var lake=s3://...
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

from esteira.config import Settings, environments_of
from esteira.export.jobs import Job, parameter, project_jobs, quartz

PACKAGE = "esteira-mlops"
VARIABLES = {
    "esteira_requirement": {
        "description": "The esteira package the jobs install.",
        "default": f"{PACKAGE}[postgres]>={importlib.metadata.version(PACKAGE)}",
    },
    "tracking_uri": {
        "description": "MLflow tracking and registry (default: this workspace's).",
        "default": "databricks",
    },
    "metadata_url": {
        "description": "esteira's metadata store, shared by every job: "
        "postgresql+psycopg://USER:{{secrets/SCOPE/KEY}}@HOST:5432/DB",
    },
    "lake": {"description": "The lake's Delta tables: s3://bucket/prefix (or abfss://, gs://)."},
}


def bundle_files(settings: Settings, out: Path) -> dict[Path, dict[str, Any]]:
    """The bundle's files (path -> YAML content) for the project, written in `out`."""
    environments = environments_of(settings.root)
    where = Path(os.path.relpath(settings.root, out.resolve())).as_posix()
    project = "${workspace.file_path}" + ("" if where == "." else f"/{where}")
    jobs = project_jobs(settings, environments)
    name = settings.name
    everywhere = {f"{name}_{j.key}": _job(settings, j, project) for j in jobs if not j.environments}
    targets: dict[str, Any] = {}
    for env in environments:
        target: dict[str, Any] = {"mode": "development" if env == "dev" else "production"}
        if env == "dev":
            target["default"] = True
        only_here = {f"{name}_{j.key}": _job(settings, j, project) for j in jobs
                     if env in j.environments}  # fmt: skip
        if only_here:
            target["resources"] = {"jobs": only_here}
        targets[env] = target
    root: dict[str, Any] = {
        "bundle": {"name": name},
        "include": ["resources/*.yml"],
        "variables": VARIABLES,
        "targets": targets,
    }
    # The project's files go to the workspace; its local stores never do.
    root["sync"] = {"exclude": [".esteira", "**/.esteira", "**/__pycache__"]}
    if where != ".":
        root["sync"]["paths"] = [where]
    return {
        out / "databricks.yml": root,
        out / "resources" / f"{name}.jobs.yml": {"resources": {"jobs": everywhere}},
    }


def _job(settings: Settings, job: Job, project: str) -> dict[str, Any]:
    arguments = [_reference(a) for a in job.command]
    task: dict[str, Any] = {
        "task_key": job.key,
        "environment_key": "esteira",
        "environment_variables_key": "stores",
        "python_wheel_task": {
            "package_name": PACKAGE,
            "entry_point": "esteira",
            "parameters": [*arguments, "--project", project, "--env", "${bundle.target}"],
        },
        "max_retries": 0,  # a failed run is resumed by the next check, not retried blind
    }
    dependencies = ["${var.esteira_requirement}"]
    if (settings.root / "requirements.txt").is_file():
        dependencies.append(f"-r /Workspace{project}/requirements.txt")
    spec: dict[str, Any] = {
        "name": f"{settings.name} {job.key}",
        "description": job.title,
        "max_concurrent_runs": 1,
        "tasks": [task],
        "environments": [
            {"environment_key": "esteira", "spec": {"client": "2", "dependencies": dependencies}}
        ],
        "environment_variables": [
            {
                "environment_variables_key": "stores",
                "spec": {
                    "variables": {
                        "MLFLOW_TRACKING_URI": "${var.tracking_uri}",
                        "ESTEIRA_METADATA_URL": "${var.metadata_url}",
                        "ESTEIRA_LAKE": "${var.lake}",
                    }
                },
            }
        ],
        "tags": {"esteira_project": settings.name, "esteira_job": job.key},
    }
    if job.parameters:
        spec["parameters"] = [{"name": k, "default": v} for k, v in job.parameters.items()]
    if job.schedule:
        spec["schedule"] = {"quartz_cron_expression": quartz(job.schedule), "timezone_id": "UTC",
                            "pause_status": "UNPAUSED"}  # fmt: skip
    return spec


def _reference(argument: str) -> str:
    """An argument, a job parameter as Databricks writes a reference to it."""
    name = parameter(argument)
    return argument if name is None else "{{job.parameters." + name + "}}"
