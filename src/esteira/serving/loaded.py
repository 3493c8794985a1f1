"""The slot that swaps the served model without a pause.

Requests take the slot's current model once and keep it for their whole prediction, so a
swap (a plain attribute assignment, atomic under the GIL) never fails or mixes an in-flight
request. A version that fails to load leaves the previous one serving and reports why.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from esteira.models import LoadedModel, load

if TYPE_CHECKING:
    from esteira.project import Project


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
        self.error: str | None = None
        self.log = log
        self._lock = threading.Lock()  # one load at a time

    def refresh(self) -> bool:
        """Load the version the alias points at, if it changed; True when a swap happened."""
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
                return False
            try:
                loaded = load(self.project, self.name, version, self.alias)
            except Exception as e:  # keep serving what we have
                self.error = f"loading version {version} failed: {type(e).__name__}: {e}"
                self.log(self.error)
                return False
            previous, self.current, self.error = self.current, loaded, None
            was = f"from version {previous.version}" if previous else "first load"
            self.log(f"serving {self.name} version {version} ({self.alias}; {was})")
            if loaded.service_changed:
                self.log(f"warning: feature service '{loaded.service.name}' changed since "
                         f"version {version} was trained; its features may differ from "
                         "training")  # fmt: skip
            return True

    def watch(self, stop: threading.Event, interval_s: float) -> threading.Thread:
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
