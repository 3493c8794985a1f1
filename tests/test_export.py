"""`esteira export`: the reference project as a Databricks asset bundle (loaded with the
`databricks-bundles` package's own job classes, every command it runs checked against the
real CLI) and as an Airflow DAG file (loaded by Airflow's DagBag in Airflow's own
environment, without import errors); and `esteira ct start --once`, what they schedule."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_cli import ESTEIRA, _env, esteira
from test_ct import CT, GATED

from esteira.export.jobs import quartz

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_PYTHON = Path(os.environ.get("ESTEIRA_AIRFLOW_PYTHON", REPO / ".venv-airflow/bin/python"))


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 0 1 */3 *", "0 0 0 1 */3 ?"),  # quarterly
        ("0 3 * * 1", "0 0 3 ? * 2"),  # Mondays: cron's 1 is Quartz's 2
        ("30 2 * * 1-5", "0 30 2 ? * 2-6"),
        ("0 0 * * 0,6", "0 0 0 ? * 1,7"),
        ("*/15 * * * *", "0 */15 * * * ?"),
        ("0 6 * * MON", "0 0 6 ? * MON"),
    ],
)
def test_cron_in_quartz_syntax(cron, expected):
    assert quartz(cron) == expected


def test_a_cron_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="needs 5 fields"):
        quartz("0 0 * *")


def test_the_bundle_loads_as_databricks_jobs_and_runs_real_commands(flight_project):
    from databricks.bundles.jobs import Job

    done = esteira("export", "databricks", "-p", str(flight_project))
    assert done.returncode == 0, done.stderr
    root = yaml.safe_load((flight_project / "databricks.yml").read_text())
    resources = yaml.safe_load((flight_project / "resources/flight_delays.jobs.yml").read_text())
    assert root["bundle"]["name"] == "flight_delays"
    assert list(root["targets"]) == ["dev", "staging", "prod"]
    assert root["targets"]["dev"]["mode"] == "development" and root["targets"]["dev"]["default"]
    assert ".esteira" in root["sync"]["exclude"]  # local stores never go to the workspace
    jobs = dict(resources["resources"]["jobs"])
    staging_only = root["targets"]["staging"]["resources"]["jobs"]
    assert list(staging_only) == ["flight_delays_cd"]  # CD gates where promotion is by CD
    jobs |= staging_only
    assert set(jobs) == {f"flight_delays_{k}" for k in ("ct", "monitoring", "batch_inference",
                                                        "cd")}  # fmt: skip
    for name, spec in jobs.items():
        job = Job.from_dict(spec)  # the package's own classes: unknown or missing fields fail
        (task,) = job.tasks
        wheel = task.python_wheel_task
        assert (wheel.package_name, wheel.entry_point) == ("esteira-mlops", "esteira")
        arguments = spec["tasks"][0]["python_wheel_task"]["parameters"]  # as written
        assert arguments[-4:] == ["--project", "${workspace.file_path}", "--env",
                                  "${bundle.target}"]  # fmt: skip
        variables = spec["environment_variables"][0]["spec"]["variables"]
        assert variables["ESTEIRA_METADATA_URL"] == "${var.metadata_url}"
        # Each command exists with these options: the real CLI parses them.
        command = ["x" if a.startswith("{{") else a for a in arguments[:-4]]
        parsed = subprocess.run([*ESTEIRA, *command, "--help"], capture_output=True, text=True,
                                env=_env(), timeout=120)  # fmt: skip
        assert parsed.returncode == 0, (name, parsed.stderr)
    assert jobs["flight_delays_ct"]["schedule"]["quartz_cron_expression"] == "0 0 * * * ?"
    assert jobs["flight_delays_monitoring"]["schedule"]["quartz_cron_expression"] == "0 0 6 * * ?"
    assert "schedule" not in jobs["flight_delays_batch_inference"]
    parameters = jobs["flight_delays_batch_inference"]["parameters"]
    assert {p["name"] for p in parameters} == {"input_table", "output_table"}
    assert "password" not in (flight_project / "databricks.yml").read_text().lower()


def test_a_project_without_a_ct_model_is_refused_in_one_line(write_project):
    root = write_project("")
    done = esteira("export", "databricks", "-p", str(root))
    assert done.returncode == 1 and "set [ct] model" in done.stderr
    assert not (root / "databricks.yml").exists()


def test_the_dag_file_loads_in_airflow_without_import_errors(flight_project, tmp_path):
    assert AIRFLOW_PYTHON.exists(), (
        f"Airflow's own environment is missing ({AIRFLOW_PYTHON}): make test installs it "
        "(tests/tools/ensure-airflow.sh)"
    )
    dags = tmp_path / "dags"
    done = esteira("export", "airflow", "-p", str(flight_project), "--out", str(dags / "fd.py"))
    assert done.returncode == 0, done.stderr
    probe = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    (task,) = dag.tasks
    dags[dag_id] = {"command": task.bash_command, "env": task.env, "params": dict(dag.params),
                    "schedule": getattr(dag.timetable, "expression", None)}
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}))
"""
    environment = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(tmp_path / "airflow"),
                   "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}  # fmt: skip
    command = [str(AIRFLOW_PYTHON), "-W", "ignore", "-c", probe, str(dags)]
    loaded = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    found = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    dags = found["dags"]
    assert len(dags) == 10  # 3 jobs in each of dev, staging and prod, and CD in staging
    ct = dags["flight_delays_prod_ct"]
    assert ct["command"] == 'esteira ct start --once --project "$ESTEIRA_PROJECT" --env prod'
    assert ct["schedule"] == "0 * * * *"
    scoring = dags["flight_delays_staging_batch_inference"]
    assert '--input "$ESTEIRA_PARAM_INPUT_TABLE"' in scoring["command"]  # quoted, not spliced
    assert scoring["env"]["ESTEIRA_PARAM_INPUT_TABLE"] == "{{ params.input_table }}"
    assert scoring["env"]["ESTEIRA_PROJECT"] == str(flight_project)


def test_ct_start_once_checks_runs_and_exits(write_project):
    root = write_project(GATED, toml=CT)
    once = [*ESTEIRA, "ct", "start", "--once", "-p", str(root)]
    first = subprocess.run(once, capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no champion" in first.stdout  # the bootstrap trigger fired and trained
    again = subprocess.run(once, capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0 and "no trigger fired" in again.stdout
