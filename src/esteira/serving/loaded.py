"""The slot that swaps the served model without a pause.

Requests take the slot's current model once and keep it for their whole prediction, so a
swap (a plain attribute assignment, atomic under the GIL) never fails or mixes an in-flight
request. A version that fails to load leaves the previous one serving and reports why; it is tried
again after a backoff that doubles with each failure (from the watch interval up to
`MAX_BACKOFF_S`), so a broken version costs a log line every few minutes, not every second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esteira.models import LoadedModel, load

if TYPE_CHECKING:
    from esteira.project import Project

MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class Backoff:
    """A version that failed to load, and when it is tried again."""

    version: str
    failures: int
    """Failed tries in a row."""
    retry_at: float
    """`time.monotonic()` of the next try."""

    def seconds_left(self) -> float:
        return max(0.0, self.retry_at - time.monotonic())


class ModelSlot:
    """The model a service answers with, following a registry alias (or pinned to one
    `version`, which it never swaps)."""

    def __init__(
        self,
        project: Project,
        name: str,
        alias: str,
        log: Any = print,
        version: str | None = None,
        optional: bool = False,
    ) -> None:
        self.project = project
        self.name = name
        self.alias = alias
        self.pinned = version
        self.optional = optional
        """A canary: when its alias is removed (rolled back), it stops serving at once,
        where the champion's slot keeps the last version it had."""
        self.current: LoadedModel | None = None
        self.error: str | None = "loading: no version loaded yet"
        self.load_failures = 0
        """Failed loads since the start, any version."""
        self.backoff: Backoff | None = None
        self.first_backoff_s = 1.0
        """The wait after a first failure; the watch interval once watching."""
        self.log = log
        self._lock = threading.Lock()  # one load at a time

    def refresh(self, force: bool = False) -> bool:
        """Load the version the alias points at, if it changed; True when a swap happened.
        A version that failed is not tried again before its backoff ends, unless `force`."""
        from mlflow.exceptions import MlflowException

        with self._lock:
            try:
                version = self.pinned or str(
                    self.project.tracker.client.get_model_version_by_alias(
                        self.name, self.alias
                    ).version
                )
            except MlflowException:
                if self.optional and self.current is not None:
                    self.log(f"'{self.alias}' of {self.name} is gone: version "
                             f"{self.current.version} stops serving")  # fmt: skip
                    self.current = None
                    return True
                if self.current is None:
                    self.error = f"model '{self.name}' has no '{self.alias}' yet"
                return False
            if self.current is not None and self.current.version == version:
                self.backoff = None  # the alias went back to the served version
                return False
            backoff = self.backoff if self.backoff and self.backoff.version == version else None
            if backoff is not None and backoff.seconds_left() > 0 and not force:
                return False
            try:
                loaded = load(self.project, self.name, version, self.alias)
            except Exception as e:  # keep serving what we have
                self._failed(version, backoff.failures + 1 if backoff else 1, e)
                return False
            previous, self.current, self.error = self.current, loaded, None
            self.backoff = None
            was = f"from version {previous.version}" if previous else "first load"
            self.log(f"serving {self.name} version {version} ({self.alias}; {was})")
            if loaded.service_changed:
                self.log(f"warning: feature service '{loaded.service.name}' changed since "
                         f"version {version} was trained; its features may differ from "
                         "training")  # fmt: skip
            return True

    def _failed(self, version: str, failures: int, error: Exception) -> None:
        self.load_failures += 1
        wait_s = min(self.first_backoff_s * 2 ** (failures - 1), MAX_BACKOFF_S)
        self.backoff = Backoff(version, failures, time.monotonic() + wait_s)
        self.error = (f"loading version {version} failed ({failures} in a row; next try in "
                      f"{wait_s:g} s): {type(error).__name__}: {error}")  # fmt: skip
        self.log(self.error)

    def watch(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        self.first_backoff_s = interval_s

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception as e:  # the watcher must outlive a registry hiccup
                    self.error = f"watching the registry failed: {e}"
                    self.log(self.error)

        thread = threading.Thread(target=loop, name="esteira-model-watch", daemon=True)
        thread.start()
        return thread
