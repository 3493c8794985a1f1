"""Registry commands: models, promote, rollback, alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import ProjectOption, new_console, number


def models(
    name: Annotated[str | None, typer.Argument(help="Model name; all models when omitted.")] = None,
    project: ProjectOption = Path("."),
    metric: Annotated[
        list[str] | None, typer.Option(help="Metrics to show (default: a few common ones).")
    ] = None,
) -> None:
    """List registered models, or the versions of one: aliases, key metrics and lineage.

    Example: esteira models flight_delays --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.project import open_project
    from esteira.registry import Registry

    registry = Registry(open_project(project))
    if name is None:
        for model in registry.models() or ["(no registered model yet)"]:
            new_console().print(model)
        return
    shown = metric or ["roc_auc", "pr_auc", "log_loss", "accuracy", "rmse"]
    versions = registry.versions(name)
    present = [m for m in shown if any(m in v.metrics for v in versions)]
    table = Table(title=f"model {name}", title_justify="left")
    for col in ("version", "aliases", "created (UTC)", *present, "pipeline run", "code", "data"):
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
            *(number(v.metrics[m]) if m in v.metrics else "-" for m in present),
            v.tags.get("esteira.pipeline_run_id", "")[:12],
            v.tags.get("esteira.code_version", "")[:8],
            data,
        )
    new_console().print(table)


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")],
    project: ProjectOption = Path("."),
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Point the champion (or another alias) at a version, by hand.

    Example: esteira promote flight_delays 3 --reason "passed review" -p examples/flight_delays
    """
    from esteira.project import open_project
    from esteira.registry import Registry

    change = Registry(open_project(project)).promote(name, version, reason, alias)
    new_console().print(
        f"{name}: {alias} {change.from_version or '(none)'} → {change.to_version} "
        f"by {change.actor}: {change.reason}"
    )


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the metadata store.")],
    project: ProjectOption = Path("."),
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
