"""The project's jobs for orchestrators: the same `esteira` commands, scheduled by
Databricks (an asset bundle) or Airflow (a DAG file) instead of `esteira ct start`."""
