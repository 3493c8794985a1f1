"""Batch scoring on Spark: the registered model runs in Spark's Python workers through
`mlflow.pyfunc.spark_udf`, and the scored rows are appended with the columns and lineage of
the embedded engine (`serving.batch`), in one Delta commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from esteira.serving.batch import BatchPrediction, plan_scoring, record_scoring
from esteira.spark.features import service_features
from esteira.spark.session import spark_session
from esteira.spark.tables import append_table, read_table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from esteira.models import LoadedModel
    from esteira.project import Project


def predict_table_spark(
    project: Project,
    model: str,
    input_table: str,
    output_table: str,
    alias: str = "champion",
    version: str | None = None,
    keep: list[str] | None = None,
    spark: SparkSession | None = None,
) -> BatchPrediction:
    """Score `input_table` (as of its current version) with `model` on Spark."""
    from esteira.runtime import training_threads

    started = time.perf_counter()
    spark = spark or spark_session(training_threads(project.settings.runtime.threads))
    from pyspark.sql import functions as F  # once the session says pyspark is there
    frame, input_version = read_table(spark, project.lake, input_table)
    plan = plan_scoring(project, model, input_table, frame.columns, input_version, alias,
                        version, keep)  # fmt: skip
    if frame.isEmpty():  # nothing to score, nothing written: as the embedded engine
        return record_scoring(project, plan, input_table, output_table, -1, 0, started)
    rows = _spread(spark, frame.select(*plan.keep, *plan.reads))
    service = plan.loaded.service
    if plan.lookup and service is not None:  # features as of each event, from the offline store
        rows = service_features(spark, project.features, rows, service)
    lineage = [F.lit(value).alias(name) for name, value in plan.lineage(input_table).items()]
    scored = rows.select(
        *plan.keep,
        *plan.reads,
        predictions(spark, plan.loaded, rows).alias("prediction"),
        *lineage,
        F.lit(datetime.now(UTC)).alias("predicted_at"),
    ).withColumn("input_version", F.col("input_version").cast("long"))
    output_version, count = append_table(project.lake, output_table, scored)
    return record_scoring(project, plan, input_table, output_table, output_version, count,
                          started)  # fmt: skip


def _spread(spark: SparkSession, rows: DataFrame) -> DataFrame:
    """`rows` spread over Spark's cores when they come from fewer files than cores: a file
    that `deltalake` wrote has one row group per million rows, which one task reads whole,
    so a table of one file would be scored by one core."""
    cores = spark.sparkContext.defaultParallelism
    return rows.repartition(cores) if len(rows.inputFiles()) < cores else rows


def predictions(spark: SparkSession, loaded: LoadedModel, rows: DataFrame) -> Column:
    """The model's predictions as the embedded engine has them: a binary classifier's
    positive score, the row of scores for more classes, the value otherwise. The model's
    output shape is read from five rows scored on the driver."""
    import mlflow
    from pyspark.sql import functions as F

    sample = rows.limit(5).toPandas()
    shape = loaded.predict_raw(sample[loaded.input_names]).shape
    local = mlflow.artifacts.download_artifacts(loaded.uri)
    many = len(shape) == 2
    # The workers score in this environment, the one the model was tested in here: MLflow
    # warns that it may differ from training's, which the compatibility gate checks.
    with _quiet("mlflow.pyfunc"):
        udf = mlflow.pyfunc.spark_udf(
            spark, local, result_type="array<double>" if many else "double", env_manager="local"
        )
    predicted = udf(F.struct(*[F.col(c) for c in loaded.input_names]))
    return predicted[1] if many and shape[1] == 2 else predicted


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """`logger`'s warnings silenced for a moment."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
