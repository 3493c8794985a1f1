"""Lake tables for Spark without Delta jars: a table is read as the Parquet files of its
current snapshot (what `deltalake` lists), and Spark's tasks write Parquet files that one
Delta commit then adds. A job that fails before the commit leaves files no version lists:
readers never see them, and `vacuum` removes them.

Tables that use Delta features which change how files are read (deletion vectors, column
mapping) are refused: they need Spark's own Delta reader (delta-spark, or Databricks)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from esteira.errors import LakeError, first_line
from esteira.spark.session import spark_error

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction
    from pyspark.sql import DataFrame, SparkSession

    from esteira.lake import Lake

UNREADABLE_FEATURES = {"deletionVectors", "columnMapping"}
WRITE_KEY = "esteira.spark_files"


def read_table(
    spark: SparkSession, lake: Lake, table: str, columns: list[str] | None = None
) -> tuple[DataFrame, int]:
    """The table as of its latest version, and that version."""
    from pyspark.sql import functions as F

    dt = lake.open(table)
    features = set(dt.protocol().reader_features or []) & UNREADABLE_FEATURES
    if features:
        raise LakeError(
            f"table '{table}' uses Delta's {', '.join(sorted(features))}: the Spark engine "
            "reads it only through Spark's Delta reader (delta-spark or Databricks)"
        )
    schema = _arrow(dt)
    files = dt.file_uris()
    if not files:  # a table with no rows yet: its schema, empty
        frame = spark.createDataFrame([], _spark_schema(schema))
    else:
        # basePath: the partition columns come back from the files' folders, as text.
        frame = spark.read.option("basePath", _spark_uri(lake.uri(table))).parquet(
            *[_spark_uri(f) for f in files]
        )
        partitions = dt.metadata().partition_columns
        frame = frame.select(
            *[
                F.col(f.name).cast(_spark_type(f.type)) if f.name in partitions else F.col(f.name)
                for f in schema
            ]
        )
    return (frame.select(*columns) if columns else frame), dt.version()


def append_table(lake: Lake, table: str, frame: DataFrame) -> tuple[int, int]:
    """Append `frame`: Spark's tasks write its Parquet files inside the table's folder, then
    one Delta commit adds them all; returns the version that commit made and its rows."""
    return _write(lake, table, frame, "append")


def replace_table(lake: Lake, table: str, frame: DataFrame) -> tuple[int, int]:
    """Replace the table's rows (and columns) with `frame`'s, in one Delta commit."""
    return _write(lake, table, frame, "overwrite")


def _write(lake: Lake, table: str, frame: DataFrame, mode: str) -> tuple[int, int]:
    import pyarrow.fs as pafs
    from deltalake import CommitProperties, Schema
    from deltalake.transaction import create_table_with_add_actions

    folder = f"spark-{uuid.uuid4().hex}"
    target = f"{lake.uri(table)}/{folder}"
    try:
        frame.write.mode("errorifexists").parquet(_spark_uri(target))
    except Exception as e:
        raise LakeError(f"Spark could not write to table '{table}': {spark_error(e)}") from None
    fs, base = pafs.FileSystem.from_uri(target)
    listed = fs.get_file_info(pafs.FileSelector(base))
    written = [f for f in listed if f.is_file and f.path.endswith(".parquet")]
    actions = [_added(fs, folder, f) for f in written]
    rows = sum(json.loads(a.stats)["numRecords"] for a in actions)
    schema = _arrow_schema(fs, written, frame)
    # The commit names the folder, so its version is found even if others committed since.
    marked = CommitProperties(custom_metadata={WRITE_KEY: folder})
    try:
        if lake.exists(table):
            dt = lake.open(table)
            if mode == "append":
                _same_columns(table, _arrow(dt), schema)
            kept = Schema.from_arrow(schema) if mode == "overwrite" else dt.schema()
            dt.create_write_transaction(actions, mode, kept, commit_properties=marked)
        else:
            create_table_with_add_actions(
                lake.path(table), Schema.from_arrow(schema), actions, commit_properties=marked
            )
    except LakeError:
        raise
    except Exception as e:
        raise LakeError(
            f"cannot commit Spark's files to table '{table}': {first_line(e)}"
        ) from None
    version = next(c["version"] for c in lake.history(table) if c.get(WRITE_KEY) == folder)
    return version, rows


def _same_columns(table: str, existing: pa.Schema, written: pa.Schema) -> None:
    """Spark's files carry the table's columns with the same types, or the commit would add
    files its readers cannot read."""
    ours = {f.name: f.type for f in written}
    theirs = {f.name: f.type for f in existing}
    differ = [
        f"{name} ({ours.get(name, 'missing')} instead of {kind})"
        for name, kind in theirs.items()
        if ours.get(name) != kind
    ]
    extra = sorted(set(ours) - set(theirs))
    if differ or extra:
        raise LakeError(
            f"cannot append to table '{table}': the rows differ from its columns: "
            + "; ".join([*differ, *(f"{name} (not in the table)" for name in extra)])
        )


def _arrow(dt: DeltaTable) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(dt.schema().to_arrow())


def _added(fs: pafs.FileSystem, folder: str, info: pafs.FileInfo) -> AddAction:
    """The Delta action that adds one file Spark wrote, with its row count."""
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    rows = pq.read_metadata(info.path, filesystem=fs).num_rows
    return AddAction(
        path=f"{folder}/{info.base_name}",
        size=info.size,
        partition_values={},
        modification_time=int(info.mtime.timestamp() * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows}),
    )


def _arrow_schema(fs: pafs.FileSystem, written: list[pafs.FileInfo], frame: DataFrame) -> pa.Schema:
    """The Arrow schema of the written files (of the frame, when Spark wrote none)."""
    import pyarrow.parquet as pq

    if written:
        return pq.read_schema(written[0].path, filesystem=fs)
    return frame.limit(0).toArrow().schema


def _spark_schema(arrow_schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def _spark_type(arrow_type: pa.DataType) -> Any:
    from pyspark.sql.pandas.types import from_arrow_type

    return from_arrow_type(arrow_type)


def _spark_uri(uri: str) -> str:
    """A file URI as Hadoop's file system reads it (file:/path; object stores unchanged)."""
    return uri.replace("file:///", "file:/", 1) if uri.startswith("file:///") else uri
