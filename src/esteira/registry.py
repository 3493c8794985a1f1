"""The model registry: MLflow registered models with `challenger` and `champion` aliases.

MLflow holds the aliases; esteira's metadata store holds every change of them with who,
when and why, which is what a rollback walks back through.
"""

from __future__ import annotations

import fcntl
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.config import DEFAULT_ENVIRONMENT
from esteira.errors import EsteiraError, NotFound
from esteira.metadata import AliasChange, AliasIntent
from esteira.provenance import executor, held

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from esteira.features import FeatureService
    from esteira.project import Project

CHAMPION = "champion"
CHALLENGER = "challenger"
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
COPIED_FROM_TAG = "esteira.copied_from"
"""On a version copied from another environment: ENV/VERSION there."""
RUN_TAG = "esteira.pipeline_run_id"
"""On a version: the pipeline run that registered it."""
ORPHANED_TAG = "esteira.orphaned"
"""On a version its run registered and never recorded (the process died): why. Such a
version is never promoted."""


class PromotionError(EsteiraError):
    """A promotion or rollback cannot be done as asked."""


LOCK_TIMEOUT_S = 600.0
_in_process: dict[str, threading.Lock] = {}
_in_process_guard = threading.Lock()
_held = threading.local()


@contextmanager
def alias_lock(project: Project, name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """One change of `name`'s aliases at a time, across processes (a file lock in the
    environment's home) and threads; re-entered freely by the thread that holds it. A
    gate decision and the promotion it leads to hold it together, so two runs at once
    cannot both be judged against the same champion and then both replace it."""
    path = project.settings.home / "locks" / f"registry-{name}.lock"
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    if path in held:
        yield
        return
    with _in_process_guard:
        local = _in_process.setdefault(str(path), threading.Lock())
    if not local.acquire(timeout=timeout_s):
        raise PromotionError(_busy(name, timeout_s))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PromotionError(_busy(name, timeout_s)) from None
                    time.sleep(0.05)
            held.add(path)
            try:
                left = max(deadline - time.monotonic(), 0.0)
                # Runs on other hosts share the metadata store, not this file.
                with project.metadata.lock(f"registry-{name}", left) as shared:
                    if not shared:
                        raise PromotionError(_busy(name, timeout_s))
                    yield
            finally:
                held.discard(path)
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        local.release()


def _busy(name: str, timeout_s: float) -> str:
    return (f"another promotion of '{name}' held its aliases for over {timeout_s:g} s; "
            "try again when it is done")  # fmt: skip


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    aliases: list[str]
    created_at: datetime
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Registry:
    def __init__(self, project: Project) -> None:
        self.project = project

    @property
    def client(self) -> MlflowClient:
        return self.project.tracker.client

    def models(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str, with_metrics: bool = True) -> list[VersionInfo]:
        """Every version of `name`, newest first, with aliases, lineage tags and run metrics."""
        model = self._require_model(name)
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():  # search results lack aliases
            aliases.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name = '{_quoted(name)}'")
        infos = [self._info(v, with_metrics, aliases.get(str(v.version), [])) for v in found]
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def version(self, name: str, version: str, with_metrics: bool = True) -> VersionInfo:
        self._require_model(name)
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(name, str(version))
        except MlflowException:
            known = ", ".join(v.version for v in self.versions(name, with_metrics=False))
            raise NotFound(f"model '{name}' has no version {version} (versions: {known})") from None
        return self._info(found, with_metrics)

    def feature_service(
        self, name: str, version: str, tags: dict[str, str] | None = None
    ) -> tuple[FeatureService | None, bool]:
        """The feature service a version was trained through (its tags say which; pass them
        when already fetched), from the project's code, and whether the service's definition
        changed since."""
        from esteira.features.definitions import SERVICE_FINGERPRINT_TAG, SERVICE_TAG

        if tags is None:
            tags = self.client.get_model_version(name, str(version)).tags
        wanted = tags.get(SERVICE_TAG)
        if not wanted:
            return None, False
        service = self.project.feature_services.get(wanted)
        if service is None:
            known = ", ".join(sorted(self.project.feature_services)) or "none"
            raise NotFound(
                f"version {version} of '{name}' was trained through feature service "
                f"'{wanted}', which the project's modules do not define (services: {known})"
            )
        return service, service.fingerprint != tags.get(SERVICE_FINGERPRINT_TAG)

    def by_alias(self, name: str, alias: str = CHAMPION) -> VersionInfo | None:
        """The version `alias` points at, or None (a model may have no champion yet)."""
        from mlflow.exceptions import MlflowException

        self._require_model(name)
        try:
            return self._info(self.client.get_model_version_by_alias(name, alias), False)
        except MlflowException:
            return None

    def promote(
        self,
        name: str,
        version: str,
        reason: str,
        alias: str = CHAMPION,
        actor: str | None = None,
        pipeline_run_id: str | None = None,
        approved: bool = False,
        cd: bool = False,
    ) -> AliasChange:
        """Point `alias` at `version`, recording who, when and why. Where the environment
        moves its champion by the CD gates (staging), only `esteira cd` does (`cd`); where
        it needs approval (prod), only a person who `approved` it."""
        check_alias(alias)
        target = self.version(name, version, with_metrics=False)
        orphaned = target.tags.get(ORPHANED_TAG)
        if orphaned:
            raise PromotionError(
                f"version {version} of '{name}' is orphaned ({orphaned}); it is never promoted: "
                "run the pipeline again to register a version on record"
            )
        current = self.by_alias(name, alias)
        if current is not None and current.version == target.version:
            raise PromotionError(f"version {version} of '{name}' is already {alias}")
        held = self.held_for(alias)
        env = self.project.settings.env
        if held == "approval" and not approved:
            raise PromotionError(
                f"{alias} of '{name}' in {env} changes only with a person's approval: "
                f'esteira promote {name} {version} --env {env} --approve --reason "..."'
            )
        if held == "cd" and not cd:
            raise PromotionError(
                f"{alias} of '{name}' in {env} changes only by passing the CD gates: "
                f"esteira cd --env {env} --model {name} --version {version}"
            )
        action = "approve" if approved else "cd" if cd else "promote"
        return self._move(name, alias, action, current, target.version, reason, actor,
                          pipeline_run_id)  # fmt: skip

    def held_for(self, alias: str = CHAMPION) -> str | None:
        """What moving `alias` here waits for (`[environments.NAME] promotion`): "cd" (the CD
        gates, staging), "approval" (a person, prod), or None (the pipeline's gates suffice).
        Only the champion waits: it is what the service answers with."""
        promotion = self.project.settings.environment.promotion
        return promotion if alias == CHAMPION and promotion != "gates" else None

    def copy_from(self, source: Registry, name: str, version: str) -> VersionInfo:
        """This environment's copy of `version` of `name` from another environment's registry
        (`source`): the model's files copied into this one's artifact store under a run with
        the source run's params and metrics, tagged with where it came from. Copying the
        same version again gives the copy made before. Copying files rather than
        `copy_model_version` works across registries (one per environment by default)."""
        import mlflow

        origin = f"{source.project.settings.env}/{version}"
        if name in self.models():
            for known in self.versions(name, with_metrics=False):
                if known.tags.get(COPIED_FROM_TAG) == origin:
                    return known
        found = source.version(name, version)
        uri = source.client.get_model_version_download_uri(name, version)
        source_run = source.client.get_run(found.run_id) if found.run_id else None
        tracker = self.project.tracker
        with tempfile.TemporaryDirectory(prefix="esteira-copy-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=source.project.tracker.tracking_uri
            )
            run_id = tracker.start_run(f"{name} v{version} from {origin}",
                                       {COPIED_FROM_TAG: origin})  # fmt: skip
            if source_run is not None:
                params = source_run.data.params
                tracker.log(run_id, params=params, metrics=source_run.data.metrics)
            self.client.log_artifacts(run_id, local, "model")
        tracker.end_run(run_id, "completed")
        if name not in self.models():
            self.client.create_registered_model(name)
        artifact_uri = self.client.get_run(run_id).info.artifact_uri
        copied = self.client.create_model_version(
            name, f"{artifact_uri}/model", run_id,
            tags={**found.tags, COPIED_FROM_TAG: origin},
        )  # fmt: skip
        return self.version(name, str(copied.version))

    def rollback(
        self, name: str, reason: str, alias: str = CHAMPION, actor: str | None = None
    ) -> AliasChange:
        """Point `alias` back at the version it had before the current one."""
        current = self.by_alias(name, alias)
        if current is None:
            raise PromotionError(f"model '{name}' has no {alias} to roll back")
        stack = held(self.project.metadata.alias_history(name, alias), lambda c: c.to_version)
        if not stack or stack[-1] != current.version:
            stack.append(current.version)  # MLflow was changed outside esteira: it is the truth
        if len(stack) < 2:
            raise PromotionError(
                f"{alias} of '{name}' is version {current.version} and has no earlier version "
                "to go back to; promote one with `esteira promote`"
            )
        return self._move(name, alias, "rollback", current, stack[-2], reason, actor, None)

    def retire(self, name: str, alias: str, reason: str, actor: str | None = None) -> AliasChange:
        """Remove `alias` (a canary's, never the champion): services following it stop
        answering with its version."""
        if alias == CHAMPION:
            raise PromotionError("the champion is moved (promote, rollback), never removed")
        current = self.by_alias(name, alias)
        if current is None:
            raise PromotionError(f"model '{name}' has no {alias} to retire")
        if not reason.strip():
            raise PromotionError(f"say why you retire {alias} of '{name}' (--reason)")
        intent = AliasIntent(model=name, alias=alias, action="retire",
                             from_version=current.version, to_version="",
                             actor=actor or executor(), reason=reason)  # fmt: skip
        with alias_lock(self.project, name):
            self.settle(name)
            return self._write_ahead(
                intent, lambda: self.client.delete_registered_model_alias(name, alias)
            )

    def history(self, name: str, alias: str = CHAMPION) -> list[AliasChange]:
        return list(self.project.metadata.alias_history(name, alias))

    def _move(
        self,
        name: str,
        alias: str,
        action: str,
        current: VersionInfo | None,
        version: str,
        reason: str,
        actor: str | None,
        pipeline_run_id: str | None,
    ) -> AliasChange:
        if not reason.strip():
            raise PromotionError(f"say why you {action} '{name}' (--reason)")
        was = current.version if current else None
        with alias_lock(self.project, name):
            self.settle(name)
            moved = self.by_alias(name, alias)  # it may have moved while this waited
            if (moved.version if moved else None) != was:
                raise PromotionError(
                    f"{alias} of '{name}' moved to version "
                    f"{moved.version if moved else '(none)'} while this waited for the lock; "
                    "look at it, then promote again"
                )
            intent = AliasIntent(model=name, alias=alias, action=action, from_version=was,
                                 to_version=version, actor=actor or executor(), reason=reason,
                                 pipeline_run_id=pipeline_run_id)  # fmt: skip
            return self._write_ahead(
                intent, lambda: self.client.set_registered_model_alias(name, alias, version)
            )

    def _write_ahead(self, intent: AliasIntent, move: Callable[[], None]) -> AliasChange:
        """Move an alias with its intent on record first, so a kill at any point leaves the
        old alias or the new one, and `settle` completes the history. Under the lock."""
        self.project.metadata.add(intent)
        move()
        change = self.project.metadata.finish_intent(intent, done=True)
        if change is None:  # only the holder of the lock finishes its own intent
            raise PromotionError(
                f"the record of moving {intent.alias} of '{intent.model}' was finished by "
                "another process: look at its history"
            )
        return change

    def mark_orphans(self, run_id: str, recorded: set[tuple[str, str]], why: str) -> list[str]:
        """Tag as orphaned the versions pipeline run `run_id` registered beyond those its
        steps `recorded` (name, version): a process killed between MLflow's registration
        and its own record left them. Returns them as NAME/VERSION."""
        found = self.client.search_model_versions(f"tags.`{RUN_TAG}` = '{run_id}'")
        marked = []
        for v in found:
            if (v.name, str(v.version)) not in recorded:
                self.client.set_model_version_tag(v.name, v.version, ORPHANED_TAG, why)
                marked.append(f"{v.name}/{v.version}")
        return marked

    def settle(self, name: str) -> list[AliasChange]:
        """Finish the alias moves of `name` a kill cut short: recorded if MLflow's alias
        moved, dropped if it did not; the changes recorded. Under the model's lock."""
        from mlflow.exceptions import MlflowException

        settled = []
        with alias_lock(self.project, name):
            for intent in self.project.metadata.alias_intents(name):
                try:
                    now = self.client.get_model_version_by_alias(name, intent.alias).version
                except MlflowException:
                    now = None
                done = str(now or "") == intent.to_version  # "": a retired alias
                note = " (completed after the process that moved it was interrupted)"
                change = self.project.metadata.finish_intent(intent, done, note)
                if change is not None:
                    settled.append(change)
        return settled

    def _require_model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException:
            known = ", ".join(self.models()) or "none yet"
            env = self.project.settings.env
            where = f" in {env}" if env != DEFAULT_ENVIRONMENT else ""
            raise NotFound(f"no registered model '{name}'{where} (models: {known})") from None

    def _info(self, v: Any, with_metrics: bool, aliases: list[str] | None = None) -> VersionInfo:
        metrics = self.client.get_run(v.run_id).data.metrics if with_metrics and v.run_id else {}
        return VersionInfo(
            name=v.name,
            version=str(v.version),
            aliases=sorted(v.aliases or aliases or []),
            created_at=datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
            run_id=v.run_id or "",
            source=v.source or "",
            tags=dict(v.tags or {}),
            metrics=dict(metrics),
        )


def check_alias(alias: str) -> None:
    """MLflow's rule for alias names, checked before anything moves."""
    if not _ALIAS.match(alias) or (alias.lower().startswith("v") and alias[1:].isdigit()):
        raise PromotionError(
            f"alias {alias!r} is not valid: use letters, digits, _ and - (at most 255), "
            "not v followed by a number (MLflow reads that as a version)"
        )


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")
