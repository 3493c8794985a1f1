"""The step cache: keys, hit validation, and listing and pruning what it holds.

A key covers the step's name and code, its parameters and the content hashes of its
inputs. A recorded execution with that key is reused only while its artifacts exist with
their sizes and the lake tables it read are still at the versions it read, so a pruned or
changed store or new data turns a hit into a rerun rather than a wrong answer. A hit whose
registered model versions the registry lost is an error that says how to start again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from esteira.artifacts import ArtifactRef, artifact_ref
from esteira.errors import EsteiraError, PipelineDefinitionError
from esteira.metadata import PipelineRun, StepIO, StepRun, utcnow

if TYPE_CHECKING:
    from esteira.pipelines.step import Step
    from esteira.project import Project


class RegistryChanged(EsteiraError):
    """A cached step's registered model versions are gone from the registry."""


def cache_key(
    step: Step,
    params: Mapping[str, Any],
    inputs: Mapping[str, ArtifactRef],
    settings: Mapping[str, Any] | None = None,
) -> str:
    """What identifies a step's result: its code, parameters, inputs' contents and the
    settings it declares it reads."""
    payload = json.dumps(
        {
            "step": step.name,
            "code": step.code_hash,
            "params": params,
            "inputs": {arg: ref.hash for arg, ref in inputs.items()},
            **({"settings": settings} if settings else {}),  # keys of older runs stay valid
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def valid_hit(project: Project, key: str) -> StepRun | None:
    """The cached execution for `key`, if its artifacts and lake inputs still hold."""
    hit = project.metadata.cached_step(key)
    if hit is None:
        return None
    if not all(artifact_ref(io).intact() for io in hit.outputs()):
        return None  # pruned, or changed on disk: the step runs again
    registered = [(m.name, m.version, m.mlflow_run_id) for m in hit.models]
    gone = project.tracker.missing_versions(registered) if registered else []
    if gone:  # a silent rerun would register anew while later steps stay cached
        name, version, _ = gone[0]
        raise RegistryChanged(
            f"model '{name}' version {version}, which step '{hit.step}' registered, is no "
            f"longer in the registry ({project.tracker.registry_uri}), or is another model "
            "there now: rerun with --no-cache to train and register again"
        )
    current = {t.table: project.lake.version(t.table) for t in hit.tables}
    written = {t.table for t in hit.tables if t.mode == "write"}
    for t in hit.tables:
        now = current[t.table]
        if now is None:
            return None
        if t.mode == "read" and t.table not in written and now != t.version:
            return None
        if t.mode == "write" and now < t.version:  # the table was rebuilt since
            return None
    return hit


@dataclass(frozen=True)
class CacheEntry:
    pipeline: str
    step: str
    executions: int
    reuses: int
    stored_bytes: int
    last_run: str


def summary(project: Project) -> list[CacheEntry]:
    """Per pipeline step: executions recorded, cache reuses, bytes of artifacts still stored."""
    with project.metadata.session() as s:
        rows = s.execute(
            select(
                PipelineRun.pipeline,
                StepRun.step,
                StepRun.status,
                func.count(),
                func.max(StepRun.ended_at),
            )
            .join(PipelineRun, StepRun.pipeline_run_id == PipelineRun.id)
            .where(StepRun.status.in_(("completed", "cached")))
            .group_by(PipelineRun.pipeline, StepRun.step, StepRun.status)
        ).all()
        outputs = s.execute(
            select(PipelineRun.pipeline, StepRun.step, StepIO.uri, StepIO.size)
            .join(StepRun, StepIO.step_run_id == StepRun.id)
            .join(PipelineRun, StepRun.pipeline_run_id == PipelineRun.id)
            .where(StepIO.direction == "out", StepRun.status == "completed")
        ).all()
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for pipeline, step, status, n, last in rows:
        entry = counts.setdefault((pipeline, step), {"completed": 0, "cached": 0, "last": last})
        entry[status] = n
        entry["last"] = max(entry["last"], last)
    stored: dict[tuple[str, str], dict[str, int]] = {}
    for pipeline, step, uri, size in outputs:
        if ArtifactRef(uri, "", "", size).exists():
            stored.setdefault((pipeline, step), {})[uri] = size
    return [
        CacheEntry(
            pipeline,
            step,
            c["completed"],
            c["cached"],
            sum(stored.get((pipeline, step), {}).values()),
            f"{c['last']:%Y-%m-%d %H:%M}",
        )
        for (pipeline, step), c in sorted(counts.items())
    ]


@dataclass(frozen=True)
class PruneReport:
    removed: int
    freed_bytes: int
    kept: int


def prune(project: Project, keep_last: int = 3, older_than_days: float = 7.0) -> PruneReport:
    """Delete stored artifacts except those of the newest `keep_last` executions of each
    step and of any execution younger than `older_than_days`; leftovers of interrupted
    writes go too. Pruned entries simply become cache misses."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with project.metadata.session() as s:
        executions = s.execute(
            select(PipelineRun.pipeline, StepRun.step, StepRun.id, StepRun.ended_at)
            .join(PipelineRun, StepRun.pipeline_run_id == PipelineRun.id)
            .where(StepRun.status == "completed")
            .order_by(StepRun.ended_at.desc())
        ).all()
        seen: dict[tuple[str, str], int] = {}
        keep_runs = set()
        for pipeline, step, run_id, ended in executions:
            rank = seen[(pipeline, step)] = seen.get((pipeline, step), 0) + 1
            if rank <= keep_last or (ended is not None and _aware(ended) >= cutoff):
                keep_runs.add(run_id)
        kept_uris = set(
            s.scalars(
                select(StepIO.uri).where(
                    StepIO.step_run_id.in_(keep_runs), StepIO.direction == "out"
                )
            )
        )
    kept_paths = {ArtifactRef(uri, "", "", 0).path for uri in kept_uris}
    removed, freed = project.artifacts.remove_all_but(kept_paths)
    return PruneReport(removed + project.artifacts.prune_temporary(), freed, len(kept_paths))


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for UTC columns; compare like with like."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def settings_read(step: Step, settings: Any) -> dict[str, Any]:
    """The values of the settings `step` declares it reads, e.g. "gates" or "ct.label"."""
    found: dict[str, Any] = {}
    for dotted in step.settings:
        value = settings
        for part in dotted.split("."):
            if not hasattr(value, part):
                raise PipelineDefinitionError(
                    f"step '{step.name}' reads setting '{dotted}', which esteira.toml has "
                    "no such key for (settings are sections and keys: 'gates', 'ct.label')"
                )
            value = getattr(value, part)
        found[dotted] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    return found
