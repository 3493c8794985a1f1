"""The check that every table the CI runs ingested into the lake was validated, read from
the lineage the runner records (which step run wrote and read which table version) and the
validation reports `ctx.validate_batch` saves on the step run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esteira.cicd.evidence import CheckResult, Evidence, failed_pipelines

if TYPE_CHECKING:
    from esteira.metadata import StepRun

REPORT_PREFIX = "validation/"
"""How `ctx.validate_batch` names the report it saves: validation/<table>/<batch>."""


def ingested_tables_validated(e: Evidence) -> CheckResult:
    """Every lake table a CI run ingested has a validation record from the step that wrote it.

    A write is an ingest when the step run that made it read no lake table other than the
    ones it writes (validating a batch reads the table's earlier batches as its reference):
    its rows came from outside the lake, a source, a file, a service. A table written by a
    step that read other lake tables is derived from them (a feature view's offline table, a
    feature table, predictions) and its data was validated where its sources were ingested;
    the quarantine table is validation's own. The record is a report that
    `ctx.validate_batch(df, table, batch)` saved in that same step run (a table's first batch
    included). A table in the lake that no recorded write made was written with `ctx.lake`
    directly, where neither its writer nor its validation is known: it fails too.
    """
    from esteira.lake import QUARANTINE_TABLE

    name = "ingested_tables_validated"
    problems = failed_pipelines(e)
    ingested: dict[str, dict[str, Any]] = {}
    derived: dict[str, str] = {}
    for o in e.runs.values():
        if not o.run_id:
            continue
        for step_run in e.project.metadata.run(o.run_id).steps:
            writer = f"{o.pipeline}.{step_run.step}"
            written, sources = _writes_and_sources(step_run)
            for table in sorted(written - {QUARANTINE_TABLE}):
                if sources:
                    derived[table] = f"{writer}, from {', '.join(sorted(sources))}"
                    continue
                batches = _validated_batches(step_run, table)
                ingested[table] = {"step": writer, "validated_batches": batches}
                if not batches:
                    problems.append(
                        f"{writer} wrote lake table '{table}' without validating it: call "
                        f"ctx.validate_batch(df, '{table}', batch) before writing it"
                    )
    views = {v.offline_table for v in e.project.feature_views.values()}
    recorded = set(ingested) | set(derived) | views | {QUARANTINE_TABLE}
    unrecorded = sorted(set(e.project.lake.tables()) - e.tables_before_runs - recorded)
    problems += [
        f"lake table '{t}' was written by no recorded step write: write it with "
        "ctx.append_table or ctx.replace_table (not ctx.lake) after ctx.validate_batch"
        for t in unrecorded
    ]
    evidence = {"ingested": ingested, "derived": derived, "unrecorded": unrecorded}
    if problems:
        return CheckResult(name, False, "; ".join(problems), evidence)
    if not ingested:
        return CheckResult.skip(name, "the CI runs ingested no lake table", evidence)
    told = ", ".join(f"{t} ({len(v['validated_batches'])})" for t, v in sorted(ingested.items()))
    return CheckResult(name, True, f"validated batches of every ingested table: {told}", evidence)


def _writes_and_sources(step_run: StepRun) -> tuple[set[str], set[str]]:
    """The tables a step run wrote, and the other tables it read (its sources)."""
    written = {t.table for t in step_run.tables if t.mode == "write"}
    read = {t.table for t in step_run.tables if t.mode == "read"}
    return written, read - written


def _validated_batches(step_run: StepRun, table: str) -> list[str]:
    prefix = f"{REPORT_PREFIX}{table}/"
    return sorted(io.name[len(prefix) :] for io in step_run.outputs() if io.name.startswith(prefix))
