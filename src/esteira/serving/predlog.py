"""The prediction log: every prediction appended to a Delta table, in batches, off the
request path. Requests only put a record on a list; a background thread writes what has
gathered every `flush_s` seconds (or `max_rows` rows). `close()` writes the rest, so a clean
shutdown (SIGTERM included) loses nothing."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from esteira.lake import Lake


@dataclass(frozen=True)
class Logged:
    request_id: str
    at: datetime
    version: str
    latency_ms: float
    rows: list[dict[str, Any]] | pd.DataFrame
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
        flush_s: float = 1.0,
        max_rows: int = 5000,
        log: Any = print,
    ) -> None:
        self.lake = lake
        self.table = table
        self.model = model
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.log = log
        self.written = 0
        self._pending: list[Logged] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="esteira-prediction-log", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def add(self, entry: Logged) -> None:
        with self._lock:
            self._pending.append(entry)
            if sum(len(e.rows) for e in self._pending) >= self.max_rows:
                self._wake.set()

    def flush(self) -> int:
        """Write what has gathered; returns the number of rows written."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            import pandas as pd

            records = [
                {
                    "request_id": e.request_id,
                    "row": i,
                    "at": e.at,
                    "model": self.model,
                    "version": e.version,
                    "shadow": e.shadow,
                    "latency_ms": e.latency_ms,
                    "features": json.dumps(row, default=str),
                    "prediction": json.dumps(prediction),
                    "error": e.error,
                }
                for e, rows in zip(batch, _as_records(batch), strict=True)
                for i, (row, prediction) in enumerate(zip(rows, e.predictions, strict=True))
            ]
            try:
                self.lake.append(self.table, pd.DataFrame.from_records(records))
            except Exception as e:
                with self._lock:  # keep them for the next flush rather than lose them
                    self._pending = batch + self._pending
                self.log(f"writing the prediction log failed, will retry: {e}")
                return 0
            self.written += len(records)
            return len(records)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()


def _as_records(batch: list[Logged]) -> list[list[dict[str, Any]]]:
    """Each entry's rows as dicts. Completed frames go through pandas' JSON together, in one
    call per flush rather than one per request: missing values as null (not NaN), times as
    ISO 8601."""
    import pandas as pd

    frames = [e.rows for e in batch if not isinstance(e.rows, list)]
    converted = iter([])
    if frames:
        text = pd.concat(frames).to_json(orient="records", date_format="iso", date_unit="us")
        converted = iter(json.loads(text))
    out = []
    for e in batch:
        if isinstance(e.rows, list):
            out.append(e.rows)
        else:  # keep each frame's own columns: frames of other services may differ
            columns = list(e.rows.columns)
            out.append([{c: row[c] for c in columns} for row in islice(converted, len(e.rows))])
    return out


def now() -> datetime:
    return datetime.now(UTC)
