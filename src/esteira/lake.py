"""Delta tables on disk or on object storage through `deltalake`: no JVM, and Spark or
Databricks read the same tables. Every write returns the table version it created, every
read can pin a version or a time, so a training run can name exactly the data it saw.

The lake's root is a folder, or a URL (`s3://bucket/prefix`, `gs://`, `az://`); the
object store's settings and credentials come from the environment as its SDK reads them
(AWS_REGION, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), never from esteira.toml. Commits
to S3 are safe with several writers: `deltalake` writes each commit with a conditional PUT
(If-None-Match), which S3 and compatible stores refuse when the version already exists."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.errors import LakeError, first_line

if TYPE_CHECKING:
    import pandas as pd
    from deltalake import DeltaTable

QUARANTINE_TABLE = "quarantine"
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# What `Lake.land` records in a batch's Delta commit (custom commit metadata, which Spark and
# Databricks show in the table's history too).
FINGERPRINT = "esteira.fingerprint"
BATCH = "esteira.batch"
BATCH_COLUMN = "esteira.batch_column"
# Operations that rewrite files but keep every row: a batch landed before them is unchanged.
_ROWS_KEPT = {"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"}


def fingerprint(df: pd.DataFrame) -> str:
    """A hash of `df`'s content: its columns with their types, and its rows in any order
    (the same rows shuffled give the same fingerprint; one value changed, another)."""
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    names = [str(c) for c in df.columns]
    order = sorted(range(len(names)), key=names.__getitem__)
    frame = df.iloc[:, order]
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable values (lists, dicts): by their text
        hashed = pd.util.hash_pandas_object(frame.astype(object).map(repr), index=False)
    rows = np.sort(hashed.to_numpy())
    header = json.dumps([[names[i], str(df.dtypes.iloc[i])] for i in order])
    digest = hashlib.sha256(header.encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()


def batch_predicate(batch_column: str, batch: str) -> str:
    """The rows of one batch, as a Delta predicate."""
    quoted = str(batch).replace("'", "''")
    return f"{batch_column} = '{quoted}'"


class Lake:
    def __init__(self, root: str | Path) -> None:
        self.remote = isinstance(root, str) and "://" in root
        """On object storage (a URL), not in a local folder."""
        self.root: str | Path = str(root).rstrip("/") if self.remote else Path(root)

    def path(self, table: str) -> str:
        """Where the table lives: a folder, or a URL on object storage."""
        if not _TABLE_NAME.match(table):
            raise LakeError(
                f"invalid table name {table!r}: use lower-case letters, digits and underscores"
            )
        return f"{self.root}/{table}" if self.remote else str(Path(self.root) / table)

    def uri(self, table: str) -> str:
        return self.path(table) if self.remote else Path(self.path(table)).as_uri()

    def tables(self) -> list[str]:
        names = [name for name in self._listing(str(self.root)) if _TABLE_NAME.match(name)]
        return sorted(name for name in names if self.exists(name))

    def exists(self, table: str) -> bool:
        if not self.remote:
            return (Path(self.path(table)) / "_delta_log").is_dir()
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(self.path(table))
        except Exception as e:
            raise self._unreachable(e) from None

    def _listing(self, where: str) -> list[str]:
        """The names in a folder of the lake (local or on object storage)."""
        if not self.remote:
            folder = Path(where)
            return [p.name for p in folder.iterdir()] if folder.is_dir() else []
        from pyarrow import fs

        try:
            store, prefix = fs.FileSystem.from_uri(where)
            found = store.get_file_info(fs.FileSelector(prefix, allow_not_found=True))
        except Exception as e:
            raise self._unreachable(e) from None
        return [info.base_name for info in found]

    def _unreachable(self, error: Exception) -> LakeError:
        cause = first_line(error)
        return LakeError(
            f"cannot reach the lake {self.root}: {cause}. Check the bucket and the object "
            "store's settings in the environment (AWS_REGION, AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or a profile, AWS_ENDPOINT_URL for an S3-compatible store)"
        )

    def version(self, table: str) -> int | None:
        """The latest version, or None when the table does not exist."""
        if not self.exists(table):
            return None
        return self.open(table).version()

    def open(
        self, table: str, version: int | None = None, as_of: datetime | str | None = None
    ) -> DeltaTable:
        from deltalake import DeltaTable

        if not self.exists(table):
            known = ", ".join(self.tables()) or "none yet"
            raise LakeError(f"lake table '{table}' does not exist in {self.root} (tables: {known})")
        try:
            dt = DeltaTable(self.path(table))
        except Exception as e:
            raise self._damaged(table, e) from None
        try:
            if version is not None:
                dt.load_as_version(version)
            elif as_of is not None:
                dt.load_as_version(as_of)
        except Exception as e:
            raise LakeError(
                f"table '{table}' has no version {version if version is not None else as_of}: "
                f"{e}; its latest version is {dt.version()}"
            ) from None
        return dt

    def _damaged(self, table: str, error: Exception) -> LakeError:
        """A table whose transaction log Delta cannot read, named with its newest commit."""
        log = f"{self.path(table)}/_delta_log"
        commits = sorted(name for name in self._listing(log) if name.endswith(".json"))
        newest = f" (its newest commit is {log}/{commits[-1]})" if commits else ""
        cause = first_line(error)
        return LakeError(
            f"lake table '{table}' cannot be opened: its transaction log {log} is damaged"
            f"{newest}: {cause}. Restore the log from a backup; the table's data files are "
            "untouched"
        )

    def read(
        self,
        table: str,
        version: int | None = None,
        as_of: datetime | str | None = None,
        columns: list[str] | None = None,
        filters: list[tuple[str, str, Any]] | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Read a table (latest, a version, or as of a time); returns the data and its version."""
        dt = self.open(table, version, as_of)
        try:
            df = dt.to_pandas(columns=columns, filters=filters)
        except Exception as e:
            raise LakeError(
                f"cannot read table '{table}' (columns={columns}, filters={filters}): {e}"
            ) from None
        return df, dt.version()

    def append(
        self,
        table: str,
        df: pd.DataFrame,
        partition_by: list[str] | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> int:
        """Append `df`. With `transaction` (app id, version), the commit also records that
        this app reached that version (Delta's app transactions), atomically: a writer that
        crashed can tell afterwards whether its append landed (`transaction_version`)."""
        return self._write(table, df, "append", partition_by=partition_by,
                           transaction=transaction)  # fmt: skip

    def transaction_version(self, table: str, app_id: str) -> int | None:
        """The last version `app_id` recorded in `table` with an append, if any."""
        if not self.exists(table):
            return None
        return self.open(table).transaction_version(app_id)

    def compact(self, table: str, retention_hours: float) -> dict[str, Any]:
        """Merge small files (OPTIMIZE), then delete the files that no version of the last
        `retention_hours` reads (VACUUM): a table appended every second stays a few files."""
        table_ = self.open(table)
        merged = table_.optimize.compact()
        removed = table_.vacuum(retention_hours=retention_hours,
                                enforce_retention_duration=False, dry_run=False)  # fmt: skip
        added, gone = merged.get("numFilesAdded", 0), merged.get("numFilesRemoved", 0)
        return {"files_added": added, "files_removed": gone, "vacuumed": len(removed)}

    def replace(
        self,
        table: str,
        df: pd.DataFrame,
        where: str | None = None,
        partition_by: list[str] | None = None,
    ) -> int:
        """Overwrite the rows matching `where` (the whole table when None) with `df`.

        Writing the same batch twice therefore leaves it once: ingestion is idempotent.
        Replacing the whole table takes the batch's schema; replacing rows (like appending)
        may add columns, never drop them or change their types.
        """
        return self._write(table, df, "overwrite", where=where, partition_by=partition_by)

    def land(
        self,
        table: str,
        df: pd.DataFrame,
        batch: str | None = None,
        batch_column: str = "batch",
        partition_by: list[str] | None = None,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Replace `batch` of `table` (its rows whose `batch_column` is `batch`; the whole
        table when None) with `df`, and record in the commit what landed: the batch, the
        rows' `fingerprint` (`content`, computed when not given) and `metadata` (more
        `esteira.*` keys), so that `landed` can later tell that the batch is still exactly
        these rows and need not be written again."""
        info = {FINGERPRINT: content or fingerprint(df), **(metadata or {})}
        where = None
        if batch is not None:
            if batch_column not in df.columns or (df[batch_column] != batch).any():
                raise LakeError(
                    f"cannot land batch {batch} of table '{table}': every row must have "
                    f"{batch_column} = {batch!r}"
                )
            info |= {BATCH: str(batch), BATCH_COLUMN: batch_column}
            where = batch_predicate(batch_column, batch)
        return self._write(table, df, "overwrite", where=where, partition_by=partition_by,
                           commit_metadata=info)  # fmt: skip

    def landed(self, table: str) -> dict[str | None, dict[str, Any]]:
        """The batches of `table` that hold exactly what `land` wrote: batch -> what its
        commit recorded (`esteira.*` keys, and the commit's `version`); the key None stands
        for the whole table, when its last change was landing it whole.

        Read from the table's history, newest commit first: a batch counts from its latest
        landing, unless a commit after it may have changed its rows. Landing another batch
        does not (it replaces only that batch's rows), nor does compacting the files; any
        other change (an append, a delete, a merge, a replace with another predicate, a
        restore) may have, so the batches landed before it count as changed, and a caller
        lands them again. A history trimmed by log retention is as far as it can tell."""
        if not self.exists(table):
            return {}
        found: dict[str | None, dict[str, Any]] = {}
        for commit in self.open(table).history():
            if commit.get("operation") in _ROWS_KEPT:
                continue
            if FINGERPRINT not in commit:
                break  # another writer's change: any batch before it may have changed
            info = {k: v for k, v in commit.items() if k.startswith("esteira.")}
            info["version"] = commit.get("version")
            batch = commit.get(BATCH)
            predicate = commit.get("operationParameters", {}).get("predicate")
            column = commit.get(BATCH_COLUMN, "")
            if batch is not None and predicate == batch_predicate(column, batch):
                found.setdefault(batch, info)  # the newest landing of that batch counts
                continue
            # The whole table was replaced (or created) with this batch, or the table whole.
            if batch is not None:
                found.setdefault(batch, info)
            elif not found:
                found[None] = info
            break
        return found

    def quarantine(
        self, table: str, df: pd.DataFrame, batch: str, reasons: list[str], run_id: str = ""
    ) -> int:
        """Keep a rejected batch in the `quarantine` table, one JSON record per row, so that a
        batch of any schema (renamed or retyped columns included) is kept, never dropped."""
        import pandas as pd

        kept = pd.DataFrame(
            {
                "table": table,
                "batch": batch,
                "quarantined_at": pd.Timestamp.now(tz="UTC"),
                "run_id": run_id,
                "reasons": "\n".join(reasons),
                "record": df.to_json(orient="records", lines=True, date_format="iso")
                .strip()
                .split("\n")
                if len(df)
                else [],
            }
        )
        return self.append(QUARANTINE_TABLE, kept)

    def quarantined(self, table: str, batch: str | None = None) -> pd.DataFrame:
        """The rows of `table` (and `batch`) held in quarantine, as they arrived."""
        import io

        import pandas as pd

        if not self.exists(QUARANTINE_TABLE):
            return pd.DataFrame()
        filters = [("table", "=", table)] + ([("batch", "=", batch)] if batch else [])
        held, _ = self.read(QUARANTINE_TABLE, filters=filters)
        if held.empty:
            return pd.DataFrame()
        return pd.read_json(io.StringIO("\n".join(held["record"])), lines=True)

    def history(self, table: str) -> list[dict[str, Any]]:
        return self.open(table).history()

    def _write(
        self,
        table: str,
        df: pd.DataFrame,
        mode: str,
        where: str | None = None,
        partition_by: list[str] | None = None,
        transaction: tuple[str, int] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> int:
        from deltalake import CommitProperties, Transaction, write_deltalake

        if not self.remote:
            Path(self.root).mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"partition_by": partition_by}
        # Written through the open table, which then holds the version this write made:
        # the table's latest may already be another writer's.
        target: Any = self.path(table)
        if self.exists(table):
            existing = target = self.open(table)
            if mode == "overwrite" and where is None:
                # The whole table is replaced: its new schema is the batch's.
                partitions = partition_by or existing.metadata().partition_columns
                options = {"schema_mode": "overwrite", "partition_by": partitions or None}
            else:
                # Part of it: columns may be added (earlier rows read them as empty), never
                # dropped, and types must match.
                lacking = [f.name for f in existing.schema().fields if f.name not in df.columns]
                if lacking:
                    raise LakeError(
                        f"cannot {mode} {len(df)} rows to table '{table}': the batch lacks its "
                        f"columns {lacking}. Write every column (null where unknown)."
                    )
                options = {"schema_mode": "merge", "predicate": where}
        if transaction is not None or commit_metadata:
            app_id, version = transaction or ("", 0)
            options["commit_properties"] = CommitProperties(
                custom_metadata=dict(commit_metadata) if commit_metadata else None,
                app_transactions=[Transaction(app_id, version)] if transaction else None,
            )
        try:
            write_deltalake(target, df, mode=mode, **options)
        except Exception as e:
            raise LakeError(
                f"cannot {mode} {len(df)} rows to table '{table}': {e}. "
                "Check that the batch has the table's columns and types."
            ) from None
        return self.open(table).version() if isinstance(target, str) else target.version()
