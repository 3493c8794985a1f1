"""The ML metadata store: pipeline runs, step runs, artifacts, data versions and models.

SQLAlchemy models on SQLite by default (WAL, so readers never block the runner); the same
models run on PostgreSQL by URL. Later records (triggers, promotions, gate decisions) join
the same tables by run id.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from esteira.errors import EsteiraError, NotFound, first_line
from esteira.files import sqlite_path, sqlite_problem


class MetadataSchemaError(EsteiraError):
    """The metadata store was made by another version of esteira."""


class MetadataDamaged(EsteiraError):
    """The metadata store's file cannot be read as one."""


class MetadataUnreachable(EsteiraError):
    """The metadata store's database server cannot be reached, refuses the credentials, or
    its driver is not installed."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {
        dict[str, Any]: JSON,
        list[dict[str, Any]]: JSON,
        datetime: DateTime(timezone=True),
    }


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    trigger: Mapped[str] = mapped_column(String(64), default="manual")
    trigger_reason: Mapped[str] = mapped_column(Text, default="")
    executor: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer, default=0)
    code_version: Mapped[str] = mapped_column(String(64))
    git_commit: Mapped[str] = mapped_column(String(64), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    only_step: Mapped[str | None] = mapped_column(String(200))
    until_step: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[list[StepRun]] = relationship(back_populates="run", order_by="StepRun.seq")

    @property
    def shown_status(self) -> str:
        """The status, where a 'running' run whose process is gone on this host shows 'died'
        (killed hard, it had no chance to record its end)."""
        if self.status != "running" or self.executor.rpartition("@")[2] != socket.gethostname():
            return self.status
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "died"
        except PermissionError:
            pass
        return self.status

    __table_args__ = (
        Index("ix_pipeline_runs_pipeline_started", "pipeline", "started_at"),
        Index("ix_pipeline_runs_started", "started_at"),
    )


class StepRun(Base):
    __tablename__ = "step_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | cached | failed
    code_hash: Mapped[str] = mapped_column(String(64))
    cache_key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    cached_from: Mapped[str | None] = mapped_column(String(32))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    run: Mapped[PipelineRun] = relationship(back_populates="steps")
    io: Mapped[list[StepIO]] = relationship(order_by="StepIO.id", cascade="all")
    tables: Mapped[list[TableAccess]] = relationship(order_by="TableAccess.id", cascade="all")
    models: Mapped[list[ModelVersionRecord]] = relationship(cascade="all")

    __table_args__ = (
        Index("ix_step_runs_cache", "cache_key", "status", "ended_at"),
        Index("ix_step_runs_step_ended", "step", "ended_at"),
    )

    def outputs(self) -> list[StepIO]:
        return [io for io in self.io if io.direction == "out"]

    def inputs(self) -> list[StepIO]:
        return [io for io in self.io if io.direction == "in"]


class StepIO(Base):
    """An artifact a step run read ("in") or wrote ("out"), under the name the pipeline uses."""

    __tablename__ = "step_io"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    step_run_id: Mapped[str] = mapped_column(ForeignKey("step_runs.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(200))
    uri: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)


class TableAccess(Base):
    """A lake table version a step run read or wrote: the data lineage."""

    __tablename__ = "table_access"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    step_run_id: Mapped[str] = mapped_column(ForeignKey("step_runs.id"), index=True)
    mode: Mapped[str] = mapped_column(String(5))  # read | write
    table: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)


class ModelVersionRecord(Base):
    """A registered model version and the step run that produced it."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    step_run_id: Mapped[str] = mapped_column(ForeignKey("step_runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    model_uri: Mapped[str] = mapped_column(Text)
    mlflow_run_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_model_versions_name", "name", "version"),)


class Alert(Base):
    """Something a person should look at: a quarantined batch, a failed gate, drift."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. data_validation
    subject: Mapped[str] = mapped_column(String(200))  # what it is about: table/batch, model
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), index=True)
    step_run_id: Mapped[str | None] = mapped_column(String(32))


class AliasMove:
    """What moving an alias is: who moved which registry alias of a model, from which
    version to which, and why (the columns its intent and its record share)."""

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback | cd | approve | retire
    from_version: Mapped[str | None] = mapped_column(String(32))
    to_version: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32))

    def fields(self) -> dict[str, Any]:
        """The move's own fields, without its id and time."""
        names = ("model", "alias", "action", "from_version", "to_version", "actor", "reason",
                 "pipeline_run_id")  # fmt: skip
        return {name: getattr(self, name) for name in names}


class AliasChange(AliasMove, Base):
    """Who moved which registry alias (champion, challenger) of a model, when and why."""

    __tablename__ = "alias_changes"
    __table_args__ = (Index("ix_alias_changes_model", "model", "alias", "id"),)


class AliasIntent(AliasMove, Base):
    """An alias move under way, recorded before MLflow's alias moves and removed, with its
    `AliasChange` added, in one transaction after it moved: one left behind was cut short
    by a kill, and the next change of the model's aliases completes or drops it by what
    MLflow shows (`Registry.settle`)."""

    __tablename__ = "alias_intents"

    def change(self) -> AliasChange:
        return AliasChange(**self.fields())


class GateDecision(Base):
    """A challenger judged against the gates and the champion, with the figures behind it."""

    __tablename__ = "gate_decisions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[str | None] = mapped_column(String(32))
    passed: Mapped[bool]
    summary: Mapped[str] = mapped_column(Text)
    checks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_gate_decisions_model", "model", "version"),)


class MonitoringRecord(Base):
    """How a model version fared on one batch: drift against its training data, and its
    metrics where labels are known. Drift and performance triggers read these."""

    __tablename__ = "monitoring"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    batch: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    drift_share: Mapped[float] = mapped_column(Float)
    drifted: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """column -> {test, value, threshold, drifted}"""
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(32), default="monitor")

    __table_args__ = (Index("ix_monitoring_model", "model", "id"),)


class CTRun(Base):
    """A continuous-training run: which trigger fired and why, and what it led to."""

    __tablename__ = "ct_runs"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    batch: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32))
    champion_before: Mapped[str | None] = mapped_column(String(32))
    champion_after: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_ct_runs_model", "model", "id"),)


class BatchPredictionRecord(Base):
    """A table scored by a model version: the lineage of batch predictions."""

    __tablename__ = "batch_predictions"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    input_table: Mapped[str] = mapped_column(String(200))
    input_version: Mapped[int] = mapped_column(Integer)
    output_table: Mapped[str] = mapped_column(String(200))
    output_version: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)


class Deployment(Base):
    """Which release of the pipeline's code an environment runs: every deploy and rollback,
    with who, when and why (the newest that is not rolled back is active)."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    environment: Mapped[str] = mapped_column(String(64))
    release: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # deploy | rollback
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_deployments_environment", "environment", "id"),)


class CDDecision(Base):
    """A version put through the CD gates of an environment (`esteira cd`): each gate's
    verdict and figures (smoke test, load test against the champion), and the release that
    was deployed there. Promotion to prod counts the passes."""

    __tablename__ = "cd_decisions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="cd")  # cd | canary
    environment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[str | None] = mapped_column(String(32))
    release: Mapped[str] = mapped_column(String(64), default="")
    passed: Mapped[bool]
    summary: Mapped[str] = mapped_column(Text)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    actor: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_cd_decisions_model", "model", "version"),)


class MetadataStore:
    def __init__(self, url: str, migrate: bool = True, read_only: bool = False) -> None:
        """`migrate=False`: open as it is (`esteira db` reads and upgrades the schema).
        `read_only`: an existing store, opened so that nothing can write to it (the
        dashboard), never migrated."""
        self.url = url
        path = sqlite_path(url)
        if read_only and path is not None and not path.is_file():
            raise NotFound(f"no metadata store at {path} yet: run a pipeline first")
        self.engine = _engine(url, read_only)
        self.shown = make_url(url).render_as_string(hide_password=True)
        """The URL as messages give it: never its password."""
        problem = sqlite_problem(path) if path else None
        if problem:  # else taken for a new store, and its history silently lost
            raise MetadataDamaged(f"the metadata store {path} {problem}: {RESTORE}")
        if url.startswith("sqlite"):
            pragmas = _sqlite_read_pragmas if read_only else _sqlite_pragmas
            event.listen(self.engine, "connect", pragmas)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        if migrate and not read_only:
            with self._named_damage():
                self._migrate()

    def _migrate(self) -> None:
        """Bring the schema to this esteira's revision: a new or local store at once; a
        shared store that is behind only through `esteira db upgrade` (other hosts may run
        the version that made it)."""
        from esteira import migrations

        revision = self.revision()
        if revision == migrations.HEAD:
            return
        if revision is not None and revision not in migrations.known():
            raise MetadataSchemaError(
                f"the metadata store {self.shown} is at schema revision {revision}, which "
                f"this esteira does not know (its newest is {migrations.HEAD}): a newer "
                "esteira made it; upgrade esteira"
            )
        if revision is not None and self.shared:
            raise MetadataSchemaError(
                f"the metadata store {self.shown} is at schema revision {revision}, this "
                f"esteira needs {migrations.HEAD}: run `esteira db upgrade` once (every "
                "host then needs this esteira)"
            )
        self.upgrade()

    def revision(self) -> str | None:
        """The store's schema revision; None for a store without one (new, or made before
        revisions)."""
        from sqlalchemy import inspect, text

        with self.engine.connect() as con:
            if "alembic_version" not in inspect(con).get_table_names():
                return None
            return con.scalar(text("SELECT version_num FROM alembic_version"))

    def upgrade(self) -> str:
        """Bring the store to the newest schema revision (`esteira db upgrade`); returns it.
        One process at a time: on PostgreSQL under a lock, on SQLite a loser of the race
        finds the schema made."""
        from sqlalchemy.exc import DatabaseError

        from esteira import migrations

        try:
            with self.lock("esteira-schema", timeout_s=300) as held, self.engine.begin() as con:
                if not held:
                    raise MetadataSchemaError(
                        f"another esteira has been upgrading the metadata store {self.shown} "
                        "for over 300 s; try again when it is done"
                    )
                migrations.upgrade(con, Base.metadata)
        except DatabaseError:
            if self.revision() != migrations.HEAD:
                raise
        return migrations.HEAD

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._named_damage(), self._session.begin() as s:
            yield s

    @contextmanager
    def _named_damage(self) -> Iterator[None]:
        """A store SQLite cannot read (truncated, overwritten) fails naming the file; a
        server that cannot be reached or refuses the credentials, naming the server."""
        from sqlalchemy.exc import DatabaseError, OperationalError

        try:
            yield
        except OperationalError as e:
            reason = first_line(e.orig)
            if self.engine.dialect.name == "sqlite" or not _unreachable(reason):
                raise
            raise MetadataUnreachable(
                f"cannot use the metadata store {self.shown}: {reason}; start the server, or "
                "set ESTEIRA_METADATA_URL (user and password in the URL or in PGUSER and "
                "PGPASSWORD, never in esteira.toml)"
            ) from None
        except DatabaseError as e:
            text = str(e.orig)
            if "malformed" not in text and "not a database" not in text:
                raise
            raise MetadataDamaged(
                f"the metadata store {self.engine.url.database or self.url} is damaged "
                f"({text}): {RESTORE}"
            ) from None

    @property
    def shared(self) -> bool:
        """Several hosts may use this store (a database server, not a SQLite file): locks
        must then be held in it, not in a local file."""
        return self.engine.dialect.name != "sqlite"

    @contextmanager
    def lock(self, name: str, timeout_s: float = 0.0) -> Iterator[bool]:
        """Hold `name` across every host of a shared store (a PostgreSQL advisory lock on a
        connection of its own: a holder that dies loses it with its connection); yields
        False when it was held elsewhere for `timeout_s`. On a local store, always True:
        the callers' file locks are the lock there."""
        if not self.shared:
            yield True
            return
        import hashlib
        import time

        from sqlalchemy import text

        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                             signed=True)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        with self.engine.connect() as con:
            # A session's lock: it outlives the transaction each attempt ends with.
            while True:
                held = con.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                con.commit()
                if held or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if not held:
                yield False
                return
            try:
                yield True
            finally:
                con.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                con.commit()

    def add(self, *records: Base) -> None:
        with self.session() as s:
            s.add_all(records)

    def update(
        self, model: type[Base], key: str, children: Sequence[Base] = (), **fields: Any
    ) -> None:
        """Set fields of one record and add records that belong to it, in one transaction."""
        with self.session() as s:
            record = s.get(model, key)
            if record is None:
                raise NotFound(f"no {model.__tablename__} record {key}")
            for name, value in fields.items():
                setattr(record, name, value)
            s.add_all(children)

    # queries -----------------------------------------------------------------------

    def run(self, run_id: str) -> PipelineRun:
        """A pipeline run with its steps, by id or unique id prefix."""
        with self.session() as s:
            runs = [s.get(PipelineRun, run_id)]  # by key first: a prefix is read row by row
            if runs[0] is None:
                query = select(PipelineRun).where(PipelineRun.id.startswith(run_id)).limit(2)
                runs = list(s.scalars(query).all())
            if len(runs) != 1:
                what = "no run" if not runs else "more than one run"
                raise NotFound(f"{what} matches '{run_id}'; list runs with `esteira runs`")
            run = runs[0]
            for st in run.steps:  # load the whole tree while the session is open
                _ = st.io, st.tables, st.models
            return run

    def close_dead_runs(self) -> list[PipelineRun]:
        """Record as failed the runs still 'running' whose process is gone from this host
        (killed hard, they could not record their end), and their running steps; returns
        them, so their MLflow runs can be closed too."""
        with self.session() as s:
            running = s.scalars(select(PipelineRun).where(PipelineRun.status == "running")).all()
            dead = [r for r in running if r.shown_status == "died"]
            for run in dead:
                run.status, run.ended_at = "failed", utcnow()
                run.error = (f"the process (pid {run.pid}) died before the run recorded its "
                             "end: killed, or out of memory")  # fmt: skip
                for step in run.steps:
                    _ = step.models  # loaded: the caller tells recorded versions from orphans
                    if step.status == "running":
                        step.status, step.ended_at = "failed", run.ended_at
                        step.error = "the run's process died during this step"
            return dead

    def runs(self, pipeline: str | None = None, limit: int = 20) -> Sequence[PipelineRun]:
        with self.session() as s:
            q = select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit)
            if pipeline:
                q = q.where(PipelineRun.pipeline == pipeline)
            return s.scalars(q).all()

    def add_alert(
        self,
        kind: str,
        subject: str,
        message: str,
        details: dict[str, Any] | None = None,
        pipeline_run_id: str | None = None,
        step_run_id: str | None = None,
    ) -> None:
        self.add(Alert(kind=kind, subject=subject, message=message, details=details or {},
                       pipeline_run_id=pipeline_run_id, step_run_id=step_run_id))  # fmt: skip

    def alias_intents(self, model: str) -> Sequence[AliasIntent]:
        """Alias moves of `model` begun and not recorded as done, oldest first."""
        with self.session() as s:
            q = select(AliasIntent).where(AliasIntent.model == model).order_by(AliasIntent.id)
            return s.scalars(q).all()

    def finish_intent(self, intent: AliasIntent, done: bool, note: str = "") -> AliasChange | None:
        """Remove an intent; if its move `done`, record its change in the same transaction."""
        with self.session() as s:
            found = s.get(AliasIntent, intent.id)
            if found is None:  # finished by another process meanwhile
                return None
            s.delete(found)
            if not done:
                return None
            change = found.change()
            change.reason += note
            s.add(change)
            return change

    def alias_history(self, model: str, alias: str) -> Sequence[AliasChange]:
        """Every change of `alias` on `model`, oldest first."""
        with self.session() as s:
            return s.scalars(
                select(AliasChange)
                .where(AliasChange.model == model, AliasChange.alias == alias)
                .order_by(AliasChange.id)
            ).all()

    def tally(self, column: Any, *where: Any) -> tuple[int, Any]:
        """How many records have `column` (a mapped column, e.g. `CTRun.at`) under the
        conditions `where`, and its newest value: evidence in one query."""
        with self.session() as s:
            count, newest = s.execute(
                select(func.count(), func.max(column)).select_from(column.class_).where(*where)
            ).one()
        return int(count), newest

    def deployments(self, environment: str) -> Sequence[Deployment]:
        """Every deploy and rollback of `environment`, oldest first."""
        with self.session() as s:
            return s.scalars(
                select(Deployment)
                .where(Deployment.environment == environment)
                .order_by(Deployment.id)
            ).all()

    def cd_decisions(
        self,
        model: str,
        version: str | None = None,
        passed: bool | None = None,
        kind: str | None = None,
    ) -> Sequence[CDDecision]:
        """The decisions of the CD gates and canaries on `model` (one version's, only passes
        or failures, one kind), newest first."""
        with self.session() as s:
            q = select(CDDecision).where(CDDecision.model == model).order_by(CDDecision.id.desc())
            if kind is not None:
                q = q.where(CDDecision.kind == kind)
            if version is not None:
                q = q.where(CDDecision.version == version)
            if passed is not None:
                q = q.where(CDDecision.passed == passed)
            return s.scalars(q).all()

    def gate_decisions(
        self,
        model: str | None = None,
        pipeline_run_id: str | None = None,
        limit: int = 20,
        version: str | None = None,
        passed: bool | None = None,
    ) -> Sequence[GateDecision]:
        """Gate decisions, newest first, of one model (one version, one run, only passing
        or failing ones) or all."""
        with self.session() as s:
            q = select(GateDecision).order_by(GateDecision.id.desc()).limit(limit)
            if model:
                q = q.where(GateDecision.model == model)
            if version is not None:
                q = q.where(GateDecision.version == version)
            if passed is not None:
                q = q.where(GateDecision.passed == passed)
            if pipeline_run_id:
                q = q.where(GateDecision.pipeline_run_id == pipeline_run_id)
            return s.scalars(q).all()

    def latest_monitoring(self, model: str) -> MonitoringRecord | None:
        with self.session() as s:
            return s.scalars(
                select(MonitoringRecord)
                .where(MonitoringRecord.model == model)
                .order_by(MonitoringRecord.id.desc())
                .limit(1)
            ).first()

    def monitoring_history(self, model: str, limit: int = 36) -> Sequence[MonitoringRecord]:
        """The newest monitoring records of `model`, newest first."""
        with self.session() as s:
            return s.scalars(
                select(MonitoringRecord)
                .where(MonitoringRecord.model == model)
                .order_by(MonitoringRecord.id.desc())
                .limit(limit)
            ).all()

    def batch_predictions(self, model: str, limit: int = 20) -> Sequence[BatchPredictionRecord]:
        """The newest tables scored by `model`, newest first."""
        with self.session() as s:
            return s.scalars(
                select(BatchPredictionRecord)
                .where(BatchPredictionRecord.model == model)
                .order_by(BatchPredictionRecord.at.desc())
                .limit(limit)
            ).all()

    def ct_runs(self, model: str, limit: int = 20) -> Sequence[CTRun]:
        with self.session() as s:
            return s.scalars(
                select(CTRun).where(CTRun.model == model).order_by(CTRun.id.desc()).limit(limit)
            ).all()

    def alerts(self, kind: str | None = None, limit: int = 20) -> Sequence[Alert]:
        with self.session() as s:
            q = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
            if kind:
                q = q.where(Alert.kind == kind)
            return s.scalars(q).all()

    def cached_step(self, cache_key: str) -> StepRun | None:
        """The newest completed execution with this cache key, with its outputs and tables."""
        with self.session() as s:
            found = s.scalars(
                select(StepRun)
                .where(StepRun.cache_key == cache_key, StepRun.status == "completed")
                .order_by(StepRun.ended_at.desc())
                .limit(1)
            ).first()
            if found is not None:
                _ = found.io, found.tables, found.models
            return found

    def latest_output(self, pipeline: str, step: str, name: str) -> StepIO | None:
        """The newest artifact `name` that `step` of `pipeline` produced (run or cached).

        Walks the step's runs newest first (index on step, ended_at), so the cost does not
        grow with history."""
        with self.session() as s:
            return s.scalars(
                select(StepIO)
                .select_from(StepRun)
                .join(PipelineRun, StepRun.pipeline_run_id == PipelineRun.id)
                .join(StepIO, StepIO.step_run_id == StepRun.id)
                .where(
                    StepRun.step == step,
                    StepRun.status.in_(("completed", "cached")),
                    PipelineRun.pipeline == pipeline,
                    StepIO.name == name,
                    StepIO.direction == "out",
                )
                .order_by(StepRun.ended_at.desc())
                .limit(1)
            ).first()


RESTORE = (
    "restore it from a backup, or move it aside to start a new one (the history of runs, "
    "the step cache and the alias history then start empty)"
)


def _unreachable(reason: str) -> bool:
    """A server's error that says it cannot be used at all (down, refusing the credentials,
    no such database), not that one statement failed."""
    words = ("connection", "authentication", "password", "does not exist", "timeout expired")
    return any(word in reason.lower() for word in words)


def _engine(url: str, read_only: bool = False) -> Any:
    """The SQLAlchemy engine of `url`, or one line saying why there is none; `read_only`:
    one whose connections refuse every write."""
    from sqlalchemy.exc import ArgumentError

    try:
        if url.startswith("postgresql"):  # an unreachable host fails in 10 s, not never
            args: dict[str, Any] = {"connect_timeout": 10}
            if read_only:
                args["options"] = "-c default_transaction_read_only=on"
            return create_engine(url, connect_args=args, pool_pre_ping=True)
        path = sqlite_path(url)
        if read_only and path is not None:
            return create_engine(f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true")
        return create_engine(url)
    except ModuleNotFoundError as e:
        raise MetadataUnreachable(
            f"the metadata store's URL needs the database driver '{e.name}', not installed: "
            "pip install 'esteira-mlops[postgres]' (PostgreSQL)"
        ) from None
    except ArgumentError:
        raise MetadataUnreachable(
            "ESTEIRA_METADATA_URL (or [metadata] url) is not a database URL: use "
            "sqlite:///path/esteira.db or postgresql+psycopg://user@host:5432/dbname"
        ) from None


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A reader's: waits for the writer's lock, changes nothing in the file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
