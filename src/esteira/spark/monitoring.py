"""Monitoring on Spark: the current data is counted by Spark aggregates into the tallies
the embedded engine fills when it streams a table (`summaries.tally`), so drift is decided
by the same tests, limits and code; the model's predictions come from `spark_udf`.

A number's grid bin is found by Spark's `Bucketizer` on the negated values (its buckets
hold their lower bound, a tally's bins their upper one), a category by its position among
the reference's; one grouped count and sum over every column at once fills all tallies.
Only the labelled rows' labels and scores come back to the driver, for the task's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from esteira.errors import EsteiraError
from esteira.monitoring.drift import tally_drift
from esteira.monitoring.job import MonitorResult, empty_message, monitored_version, write_report
from esteira.monitoring.monitor import PREDICTION, record_monitoring, reference_profile
from esteira.spark.scoring import predictions
from esteira.spark.session import spark_session
from esteira.spark.tables import read_table
from esteira.summaries.tally import Tally

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from esteira.metrics import Scores
    from esteira.models import LoadedModel
    from esteira.project import Project
    from esteira.summaries.profile import ColumnProfile

SCORES = "_scores"  # the model's output for the metrics, beside its point for drift


def monitor_table_spark(
    project: Project,
    model: str,
    table: str,
    version: str | None = None,
    batch: str | None = None,
    report: Path | None = None,
    spark: SparkSession | None = None,
) -> MonitorResult:
    """`esteira monitor --input TABLE --engine spark`: drift of the table's model inputs and
    of the model's predictions on it, and its metrics where it has labels."""
    from esteira.models import load
    from esteira.runtime import training_threads

    ct = project.settings.ct
    version = monitored_version(project, model, version)
    spark = spark or spark_session(training_threads(project.settings.runtime.threads))
    from pyspark.sql import functions as F  # once the session says pyspark is there
    data, table_version = read_table(spark, project.lake, table)
    if batch:
        if ct.batch_column not in data.columns:
            raise EsteiraError(f"lake table '{table}' has no '{ct.batch_column}' column "
                               "([ct] batch_column) to pick a batch from")  # fmt: skip
        data = data.where(F.col(ct.batch_column) == batch)
    if data.isEmpty():
        raise EsteiraError(empty_message(project, table, batch))
    name = f"{table}@v{table_version}" + (f" batch {batch}" if batch else "")
    loaded = load(project, model, version)
    missing = [c for c in loaded.input_names if c not in data.columns]
    if missing:
        raise EsteiraError(f"{name} lacks inputs of {model} version {version}: "
                           f"{', '.join(missing)}")  # fmt: skip
    reference = reference_profile(project, model, version, ct.reference_output, loaded)
    data = data.drop(PREDICTION, SCORES)
    scored = data.withColumn(SCORES, predictions(spark, loaded, data))
    scored = scored.withColumn(PREDICTION, _point(loaded, F.col(SCORES)))
    scored = scored.persist()  # counted, then its labelled rows collected: scored once
    try:
        columns = [c for c in [*loaded.input_names, PREDICTION] if c in reference.columns]
        tallies = spark_tallies(scored, {c: reference.columns[c] for c in columns})
        labelled, segments = _labelled(scored, ct.label, project.settings.gates.segment, loaded)
    finally:
        scored.unpersist()
    ignore = project.settings.monitoring.ignore_columns
    drifted = {}
    for column, tally in tallies.items():
        found = tally_drift(tally)
        if found is not None:
            kind = {"kind": "prediction"} if column == PREDICTION else {}
            drifted[column] = found | kind | ({"counted": False} if column in ignore else {})
    rows = tallies[columns[0]].rows
    record = record_monitoring(project, loaded, batch or name, rows, drifted, loaded.task,
                               labelled, segments, "monitor")  # fmt: skip
    counts = {column: tally.bin_counts() for column, tally in tallies.items()}
    return MonitorResult(record, write_report(project, record, reference, counts, report))


def spark_tallies(frame: DataFrame, references: dict[str, ColumnProfile]) -> dict[str, Tally]:
    """Tallies of `frame`'s columns against their reference profiles, counted by Spark: the
    same counts as `Tally.add` over the same rows (the sums up to the order of additions)."""
    from pyspark.ml.feature import Bucketizer
    from pyspark.sql import functions as F

    tallies = {c: Tally.of(ref) for c, ref in references.items()}
    names = list(tallies)
    numeric = [c for c in names if references[c].kind == "numeric"]
    # Missing: null, or NaN for a number (as pandas and `Tally.add` take it).
    present = {c: F.col(c).isNotNull() for c in names}
    present |= {c: present[c] & ~F.isnan(F.col(c).cast("double")) for c in numeric}
    found = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.count(F.when(present[c], 1)).alias(f"present{i}") for i, c in enumerate(names)],
    ).first()
    assert found is not None  # an aggregate without grouping has one row
    for i, tally in enumerate(tallies.values()):
        tally.rows, tally.nulls = found["rows"], found["rows"] - found[f"present{i}"]
    # Numbers negated: Bucketizer's buckets hold their lower bound, a tally's bins the upper.
    negated = [F.when(present[c], -F.col(c).cast("double")).alias(f"_n{c}") for c in numeric]
    frame = frame.select(*names, *negated)
    if numeric:
        frame = Bucketizer(
            splitsArray=[[-np.inf, *(-tallies[c].grid[::-1]).tolist(), np.inf] for c in numeric],
            inputCols=[f"_n{c}" for c in numeric],
            outputCols=[f"_b{c}" for c in numeric],
            handleInvalid="keep",
        ).transform(frame)
    cells = [
        F.struct(
            F.lit(i).alias("column"),
            _bin(c, references[c], len(tallies[c].grid)).alias("bin"),
            (-F.col(f"_n{c}") if c in numeric else F.lit(None).cast("double")).alias("value"),
        )
        for i, c in enumerate(names)
    ]
    counted = (
        frame.select(F.explode(F.array(*cells)).alias("cell"))
        .where(F.col("cell.bin").isNotNull())
        .groupBy("cell.column", "cell.bin")
        .agg(F.count(F.lit(1)).alias("count"), F.sum("cell.value").alias("sum"))
        .collect()
    )
    for row in counted:
        tally = tallies[names[row["column"]]]
        tally.counts[row["bin"]] += row["count"]
        if tally.sums.size:
            tally.sums[row["bin"]] += row["sum"]
    return tallies


def _bin(column: str, reference: ColumnProfile, grid_points: int) -> Column:
    """The tally bin of each present value of `column` (null when missing): for a number,
    how many grid points lie below it; for a category, its place among the reference's,
    "other" last."""
    from pyspark.sql import functions as F

    if reference.kind == "numeric":
        return (F.lit(grid_points) - F.col(f"_b{column}")).cast("int")
    known = F.array(*[F.lit(c) for c in reference.categories])
    place = F.array_position(known, F.col(column).cast("string"))
    return F.when(place == 0, len(reference.categories)).otherwise(place - 1).cast("int")


def _point(loaded: LoadedModel, scores: Column) -> Column:
    """One figure per row for prediction drift, as `Scores.point` gives it: the predicted
    class (as text) of a multiclass model, else its score or value."""
    from pyspark.sql import functions as F

    if loaded.task != "multiclass" or not loaded.classes:
        return scores
    classes = F.array(*[F.lit(str(c)) for c in loaded.classes])
    return F.element_at(classes, F.array_position(scores, F.array_max(scores)).cast("int"))


def _labelled(
    scored: DataFrame, label: str | None, segment: str | None, loaded: LoadedModel
) -> tuple[tuple[np.ndarray, Scores] | None, np.ndarray | None]:
    """The labels and scores of the rows whose labels are known, and their segments."""
    from pyspark.sql import functions as F

    from esteira.metrics import Scores

    if not label or label not in scored.columns:
        return None, None
    by_segment = bool(segment) and segment in scored.columns
    chosen = [label, SCORES, *([segment] if by_segment else [])]
    known = scored.where(F.col(label).isNotNull()).select(*chosen).toArrow()
    if not known.num_rows:
        return None, None
    raw = known.column(SCORES).to_pylist()
    scores = Scores.of(loaded.task, np.asarray(raw, dtype=float), loaded.classes)
    truth = known.column(label).to_numpy(zero_copy_only=False)
    segments = known.column(segment).to_numpy(zero_copy_only=False) if by_segment else None
    return (truth, scores), segments
