"""An Airflow DAG file of the project: a DAG per job and environment, each one task running
the `esteira` command with a BashOperator on the Airflow worker (where esteira and the
project are installed, and the stores' settings are in the environment).

Continuous training is a scheduled check (`jobs.py`); a DAG of dev starts paused. Job
parameters are DAG params, passed to the command through environment variables, never
spliced into the shell line.
"""

from __future__ import annotations

from pathlib import Path

from esteira.config import Settings, environments_of
from esteira.export.jobs import Job, parameter, project_jobs

HEADER = '''"""Airflow DAGs of the esteira project {name}, written by `esteira export airflow`.

Each DAG runs one `esteira` command in one environment. The workers need esteira and the
project (ESTEIRA_PROJECT, default {root!r}) and the stores' settings in their
environment: MLFLOW_TRACKING_URI, ESTEIRA_METADATA_URL, ESTEIRA_LAKE (secrets from
Airflow's connections or the deployment, never from this file).
"""

import os
from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

PROJECT = os.environ.get("ESTEIRA_PROJECT", {root!r})
'''

DAG_TEMPLATE = """

with DAG(
    dag_id={dag_id!r},
    description={title!r},
    schedule={schedule!r},
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation={paused!r},
    params={params!r},
    tags=["esteira", {name!r}, {env!r}],
):
    BashOperator(
        task_id={task!r},
        bash_command={command!r},
        env={variables},
        append_env=True,
    )
"""


def dag_file(settings: Settings, project_path: Path) -> str:
    """The text of the DAG file; `project_path`: where the workers find the project."""
    environments = environments_of(settings.root)
    jobs = project_jobs(settings, environments)
    text = HEADER.format(name=settings.name, root=str(project_path))
    for env in environments:
        for job in jobs:
            if job.environments and env not in job.environments:
                continue
            text += _dag(settings.name, env, job)
    return text


def _dag(project: str, env: str, job: Job) -> str:
    words, variables = [], {}
    for argument in job.command:
        name = parameter(argument)
        if name is None:
            words.append(argument)
            continue
        variable = f"ESTEIRA_PARAM_{name.upper()}"
        variables[variable] = "{{ params." + name + " }}"
        words.append(f'"${variable}"')
    command = " ".join(["esteira", *words, '--project "$ESTEIRA_PROJECT"', "--env", env])
    environment = "{" + "".join(f"{k!r}: {v!r}, " for k, v in variables.items())
    environment += '"ESTEIRA_PROJECT": PROJECT}'
    return DAG_TEMPLATE.format(
        dag_id=f"{project}_{env}_{job.key}", title=job.title, schedule=job.schedule,
        paused=env == "dev", params=job.parameters, name=project, env=env, task=job.key,
        command=command, variables=environment,
    )  # fmt: skip
