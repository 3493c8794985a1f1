"""The prediction log: every answer appended to a Delta table, with nothing answered lost.

A request writes its record, one JSON line, to a local append-only segment file before its
answer is sent: one `write` call, after which the line is the kernel's, so the service
may die any way (SIGKILL included) without losing it; a background thread fsyncs the
segment every `FSYNC_S` against a machine crash. Every `flush_s` seconds (or `max_rows`
rows) the thread closes the segment, appends its lines to the Delta table and deletes it.
Each append carries a Delta app transaction (this log's id, the segment's number) in the
same commit, so a segment is written exactly once: one left by a service that died,
whether or not its append landed, is appended at the next start, or deleted when the table
shows it was. The table is compacted and vacuumed every `COMPACT_S`, so its files do not
grow with uptime.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esteira.lake import Lake

FSYNC_S = 0.05
COMPACT_S = 600.0
RETENTION_HOURS = 24.0
"""Older versions of the log's files than this go at the next vacuum."""
SEGMENT = "{:010d}.jsonl"
LOCK = "owner.lock"


@dataclass(frozen=True)
class Logged:
    request_id: str
    at: datetime
    version: str
    latency_ms: float
    rows: list[dict[str, Any]]
    """The rows as sent, or as a feature service completed them."""
    predictions: list[Any]
    shadow: bool = False
    error: str = ""
    """Why the version failed to predict (its predictions are then null)."""


class PredictionLog:
    def __init__(
        self,
        lake: Lake,
        table: str,
        model: str,
        folder: Path,
        flush_s: float = 1.0,
        max_rows: int = 5000,
        log: Any = print,
    ) -> None:
        self.lake = lake
        self.table = table
        self.model = model
        self.folder = Path(folder)
        """Where this table's segments wait: one sub-folder per running service."""
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.log = log
        self.written = 0
        self.last_flush: datetime | None = None
        self._id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self._own = self.folder / self._id
        self._segment = 0
        self._fd = -1
        self._rows = 0
        self._lock = threading.Lock()  # the segment being appended to
        self._write_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._owner: Any = None
        self._thread = threading.Thread(
            target=self._run, name="esteira-prediction-log", daemon=True
        )

    @property
    def backlog(self) -> int:
        """Rows answered and not yet in the Delta table."""
        return self._rows

    def start(self) -> None:
        """Take this service's segment folder, write what services that died left, and
        start the background thread."""
        self._own.mkdir(parents=True)
        self._owner = open(self._own / LOCK, "w")  # noqa: SIM115 (held while serving)
        fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._open_segment()
        self.recover()
        self._thread.start()

    def add(self, entry: Logged) -> None:
        """On record before the answer goes out: one line in the open segment."""
        line = _encode(entry)
        with self._lock:
            os.write(self._fd, line)
            self._rows += len(entry.predictions)
            if self._rows >= self.max_rows:
                self._wake.set()

    def flush(self) -> int:
        """Close the open segment and write every closed one to the table; the rows
        written. A segment that fails to write stays for the next flush."""
        with self._write_lock:
            with self._lock:
                if self._rows:
                    self._open_segment()  # the one before is closed now
                    self._rows = 0
            written = 0
            for segment in self._closed_segments(self._own):
                written += self._write(self._own.name, segment)
            self.written += written
            self.last_flush = datetime.now(UTC)
            return written

    def recover(self) -> int:
        """Write the segments of services that died (their folders are not locked)."""
        written = 0
        for folder in sorted(p for p in self.folder.iterdir() if p.is_dir() and p != self._own):
            with open(folder / LOCK, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live service's
                segments = self._closed_segments(folder)
                done = sum(self._write(folder.name, s) for s in segments)
                if not any(folder.glob("*.jsonl")):
                    shutil.rmtree(folder, ignore_errors=True)
            if done:
                self.log(f"prediction log: {done} rows recovered from a service that stopped "
                         f"without writing them ({folder.name})")  # fmt: skip
            written += done
        self.written += written
        return written

    def close(self) -> None:
        """Write everything answered; a clean stop leaves no segment behind."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.flush()
        os.close(self._fd)
        current = self._current()
        if current.exists() and current.stat().st_size == 0:
            current.unlink()
        if not any(self._own.glob("*.jsonl")):
            self._owner.close()
            shutil.rmtree(self._own, ignore_errors=True)

    # internals ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_s
        next_compact = time.monotonic() + COMPACT_S
        while not self._stop.is_set():
            self._wake.wait(FSYNC_S)
            with self._lock:
                os.fsync(self._fd)
            now = time.monotonic()
            if self._wake.is_set() or now >= next_flush:
                self._wake.clear()
                next_flush = now + self.flush_s
                self._safely(self.flush)
            if now >= next_compact:
                next_compact = now + COMPACT_S
                self._safely(self._compact)

    def _safely(self, action: Any) -> None:
        try:
            action()
        except Exception as e:  # the log must outlive a failing disk or lake, and retry
            self.log(f"prediction log: {action.__name__} failed, will retry: {e}")

    def _compact(self) -> None:
        if self.lake.exists(self.table):
            self.lake.compact(self.table, RETENTION_HOURS)

    def _open_segment(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
        self._segment += 1
        path = self._own / SEGMENT.format(self._segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _current(self) -> Path:
        return self._own / SEGMENT.format(self._segment)

    def _closed_segments(self, folder: Path) -> list[Path]:
        """A folder's segments in order, but for the one this service is appending to."""
        return [s for s in sorted(folder.glob("*.jsonl")) if s != self._current()]

    def _write(self, owner: str, segment: Path) -> int:
        """Append one segment's lines to the table, once: its app transaction says whether
        an earlier attempt landed."""
        number = int(segment.stem)
        app_id = f"esteira-prediction-log-{owner}"
        done = self.lake.transaction_version(self.table, app_id)
        landed = done is not None and done >= number
        records = [] if landed else _records(segment, self.model)
        if records:
            import pandas as pd

            self.lake.append(self.table, pd.DataFrame.from_records(records),
                             transaction=(app_id, number))  # fmt: skip
        segment.unlink()
        return len(records)


def _encode(entry: Logged) -> bytes:
    """The record as one JSON line (NaN as null)."""
    import orjson

    record = orjson.dumps({
        "request_id": entry.request_id,
        "at": entry.at.isoformat(),
        "version": entry.version,
        "latency_ms": entry.latency_ms,
        "shadow": entry.shadow,
        "error": entry.error,
        "predictions": entry.predictions,
        "rows": entry.rows,
    }, default=str, option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
    return record + b"\n"


def _records(segment: Path, model: str) -> list[dict[str, Any]]:
    """The table's rows from a segment; a last line cut short by a crash is left out (its
    answer never went out: the line is written before the answer)."""
    records = []
    with open(segment, "rb") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            at = datetime.fromisoformat(e["at"])
            for i, (row, prediction) in enumerate(zip(e["rows"], e["predictions"], strict=True)):
                records.append({
                    "request_id": e["request_id"], "row": i, "at": at, "model": model,
                    "version": e["version"], "shadow": e["shadow"],
                    "latency_ms": e["latency_ms"], "features": json.dumps(row, default=str),
                    "prediction": json.dumps(prediction), "error": e["error"],
                })  # fmt: skip
    return records


def now() -> datetime:
    return datetime.now(UTC)
