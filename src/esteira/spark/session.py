"""The Spark session the engine runs on: the one already active (a Databricks notebook or
job, `spark-submit`), else a local one with a core per thread of the budget."""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.errors import EsteiraError, first_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkUnavailable(EsteiraError):
    """The Spark engine cannot start here: pyspark or Java is missing."""


# Any session: files written as Delta expects (microsecond timestamps, not Spark's INT96
# default); partition values read back as text and cast to the table's types, never guessed
# from a path; times handed to pandas in UTC.
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# A local session of esteira's own: no web UI, no progress bars over esteira's, no _SUCCESS
# files in the lake, and the model fed 50,000 rows at a time (the embedded engine's chunks;
# Spark's default of 10,000 pays MLflow's per-call checks five times as often).
LOCAL_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
}


PANDAS_WARNING = "PySpark does not yet fully support"


def spark_session(cores: int = 1) -> SparkSession:
    """The active session, or a local one on `cores` cores; one line when Spark cannot run."""
    # PySpark warns about pandas 3 on every conversion; the engine's results are tested.
    warnings.filterwarnings("ignore", PANDAS_WARNING, FutureWarning)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'esteira-mlops[spark]' "
            "(or run on a cluster that has it)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in SETTINGS.items():
            active.conf.set(key, value)
        return active
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise SparkUnavailable(
            "the Spark engine needs Java 17 or newer and found none: install it (Debian: "
            "apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    # Its Python workers run this interpreter (the one with the project's libraries),
    # unless PYSPARK_PYTHON says otherwise; it listens on loopback only.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    logging = Path(__file__).with_name("log4j2.properties").as_uri()
    builder = (
        SparkSession.builder.master(f"local[{max(1, cores)}]")
        .appName("esteira")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={logging}")
        .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{PANDAS_WARNING}:FutureWarning")
    )
    for key, value in (SETTINGS | LOCAL_SETTINGS).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as e:  # the JVM did not start: a Java too old, or broken
        raise SparkUnavailable(
            f"Spark could not start its JVM: {first_line(e)}. The Spark engine needs Java 17 "
            "or newer (JAVA_HOME, or java on PATH)"
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


_RAISED = re.compile(r"^[\w.]*(?:Error|Exception): .*$", re.MULTILINE)


def spark_error(error: BaseException) -> str:
    """What went wrong in a Spark job, in one line: the last error its Python workers
    raised (Spark wraps it in pages of JVM frames), else the message's first line."""
    raised = _RAISED.findall(str(error))
    return raised[-1] if raised else first_line(error)
