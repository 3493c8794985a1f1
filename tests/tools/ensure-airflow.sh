#!/usr/bin/env bash
# Airflow in an environment of its own (its pins clash with esteira's): the tests load the
# DAG file `esteira export airflow` writes with Airflow's DagBag there.
set -euo pipefail
venv="${1:-.venv-airflow}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import airflow" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "apache-airflow>=3.0"
