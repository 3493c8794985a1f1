"""Registry commands: models, promote, rollback, alerts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esteira.commands.common import EnvOption, ProjectOption, new_console, number

if TYPE_CHECKING:
    from esteira.project import Project


def models(
    name: Annotated[str | None, typer.Argument(help="Model name; all models when omitted.")] = None,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Run metrics to show (default: those of the versions' task)."),
    ] = None,
) -> None:
    """List registered models, or the versions of one: aliases, task, the gates' verdict on
    the task's metric, the run's metrics and lineage.

    Example: esteira models flight_delays --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.metrics import fitting
    from esteira.models import version_task
    from esteira.project import open_project
    from esteira.registry import RUN_TAG, Registry

    opened = open_project(project)
    registry = Registry(opened)
    if name is None:
        for model in registry.models() or ["(no registered model yet)"]:
            new_console().print(model)
        return
    versions = registry.versions(name)
    tasks = {v.version: version_task(opened, name, v.version, v.tags) for v in versions}
    shown = metric or [m for task in dict.fromkeys(tasks.values()) for m in fitting(task)]
    present = [m for m in dict.fromkeys(shown) if any(m in v.metrics for v in versions)]
    gated = _gate_verdicts(opened, name)
    deployed = _cd_verdicts(opened, name)
    title = f"model {name}" + (f" in {opened.settings.env}" if opened.settings.env != "dev" else "")
    table = Table(title=title, title_justify="left")
    columns = ("version", "aliases", "created (UTC)", "task", "gates", "cd", *present)
    for col in (*columns, "pipeline run", "code", "data"):
        table.add_column(col, overflow="fold")
    for v in versions:
        data = ", ".join(
            f"{k.removeprefix('esteira.data.').removesuffix('.version')}@v{val}"
            for k, val in sorted(v.tags.items())
            if k.startswith("esteira.data.")
        )
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            tasks[v.version],
            gated.get(v.version, "-"),
            deployed.get(v.version) or _copied(v.tags),
            *(number(v.metrics[m]) if m in v.metrics else "-" for m in present),
            v.tags.get(RUN_TAG, "")[:12],
            v.tags.get("esteira.code_version", "")[:8],
            data,
        )
    new_console().print(table)


def _gate_verdicts(project: Project, name: str) -> dict[str, str]:
    """Per version, the latest gate decision: passed or failed, with the metric it was
    judged on and the version's figure on the gates' test data."""
    verdicts: dict[str, str] = {}
    for d in project.metadata.gate_decisions(name, limit=500):  # newest first
        if d.version in verdicts:
            continue
        key = d.checks.get("metric", "")
        figure = d.checks.get("metrics", {}).get(key)
        shown = f" {key} {number(figure)}" if figure is not None else ""
        verdicts[d.version] = ("[green]passed[/]" if d.passed else "[red]failed[/]") + shown
    return verdicts


def _cd_verdicts(project: Project, name: str) -> dict[str, str]:
    """Per version, its latest CD decision here: the load test's p99 against the champion's,
    or the first gate that failed."""
    verdicts: dict[str, str] = {}
    for d in project.metadata.cd_decisions(name):  # newest first
        if d.version in verdicts:
            continue
        if not d.passed:
            failed = next((c["name"] for c in d.checks if not c["passed"]), "?")
            verdicts[d.version] = f"[red]failed[/] {failed}"
            continue
        load = next((c["figures"] for c in d.checks if c["name"] == "load_test"), {})
        mine, theirs = load.get("candidate") or {}, load.get("champion") or {}
        versus = f" (v{d.champion_version} {theirs['p99_ms']})" if theirs else ""
        verdicts[d.version] = f"[green]passed[/] p99 {mine.get('p99_ms', '?')} ms{versus}"
    return verdicts


def _copied(tags: dict[str, str]) -> str:
    from esteira.registry import COPIED_FROM_TAG

    source = tags.get(COPIED_FROM_TAG)
    return f"from {source}" if source else "-"


def promote(
    name: Annotated[
        str | None, typer.Argument(help="Registered model name (default: \\[ct] model).")
    ] = None,
    version: Annotated[
        str | None,
        typer.Argument(
            help="Version to promote; where the environment promotes from another "
            "(prod from staging), a version there, by default its champion."
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")] = "",
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    approve: Annotated[
        bool, typer.Option(help="Approve it, where the environment needs it (prod).")
    ] = False,
) -> None:
    """Point the champion (or another alias) at a version, by hand. In prod, only a version
    that passed `esteira cd --env staging` is promoted, copied from staging, and only with
    --approve: who approved, when and why are recorded.

    Example: esteira promote flight_delays 3 --reason "passed review" -p examples/flight_delays
    Example: esteira promote --env prod --approve --reason "reviewed the CD figures"
    """
    from esteira.errors import ConfigError
    from esteira.project import open_project
    from esteira.registry import Registry

    opened = open_project(project)
    name = name or opened.settings.ct.model
    if not name:
        raise ConfigError("name the model (or set [ct] model in esteira.toml)")
    console = new_console()
    if opened.settings.environment.promote_from:
        from esteira.cicd.promotion import promote_from_source

        done = promote_from_source(project, None, name, version, reason, approve, alias)
        change = done.change
        came = (f" ({done.source_env} version {done.source_version}, passed esteira cd "
                f"{done.cd_passes} time(s))")  # fmt: skip
    else:
        if version is None:
            raise ConfigError(f"name the version of '{name}' to promote")
        change = Registry(opened).promote(name, version, reason, alias, approved=approve)
        came = ""
    console.print(
        f"{opened.settings.env}: {name} {alias} {change.from_version or '(none)'} → "
        f"{change.to_version}{came}, {change.action} by {change.actor}: {change.reason}"
    )


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")],
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
) -> None:
    """Put the champion back on the version it had before the current one.

    Example: esteira rollback flight_delays --reason "AUC fell on JFK" -p examples/flight_delays
    """
    from esteira.project import open_project
    from esteira.registry import Registry

    change = Registry(open_project(project)).rollback(name, reason, alias)
    new_console().print(
        f"{name}: {alias} {change.from_version} → {change.to_version} "
        f"by {change.actor}: {change.reason}"
    )


def alerts(
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: data_validation or gate.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many alerts to list.")] = 20,
) -> None:
    """List recent alerts: quarantined batches and challengers the gates kept out.

    Example: esteira alerts --project examples/flight_delays --kind data_validation
    """
    from rich.table import Table

    from esteira.project import open_project

    table = Table(title="alerts", title_justify="left")
    for col in ("when (UTC)", "kind", "subject", "message", "run"):
        table.add_column(col, overflow="fold", no_wrap=col == "when (UTC)")
    for a in open_project(project).metadata.alerts(kind, limit):
        run = (a.pipeline_run_id or "")[:12]
        table.add_row(f"{a.created_at:%Y-%m-%d %H:%M:%S}", a.kind, a.subject, a.message, run)
    new_console().print(table)
