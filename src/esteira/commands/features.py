"""`esteira features`: discover the project's feature views."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esteira.commands.common import Engine, EngineOption, EnvOption, ProjectOption, new_console

app = typer.Typer(help="Discover the project's feature views and services.", no_args_is_help=True)


@app.command("list")
def features_list(project: ProjectOption = Path("."), env: EnvOption = None) -> None:
    """List the feature views (source, entities, features, TTL, offline table version) and
    the feature services (request fields, views, time field).

    Example: esteira features list --project examples/flight_delays
    """
    from rich.table import Table

    from esteira.project import load_project

    p = load_project(project)
    table = Table(title="feature views", title_justify="left")
    for col in ("view", "source", "entities", "timestamp", "features", "ttl", "offline"):
        table.add_column(col, overflow="fold", no_wrap=col != "features")
    for v in sorted(p.feature_views.values(), key=lambda v: v.name):
        version = p.lake.version(v.offline_table)
        table.add_row(
            v.name,
            v.source,
            ", ".join(v.entities) or "(global)",
            v.timestamp or "(static)",
            ", ".join(v.features),
            str(v.ttl or "-"),
            f"v{version}" if version is not None else "not materialized",
        )
    console = new_console()
    console.print(table)
    if p.feature_services:
        services = Table(title="feature services", title_justify="left")
        for col in ("service", "request", "views", "at", "derive"):
            services.add_column(col, overflow="fold")
        for s in sorted(p.feature_services.values(), key=lambda s: s.name):
            services.add_row(
                s.name,
                ", ".join(f"{f} ({k})" for f, k in s.request),
                ", ".join(v.name for v in s.views),
                s.at or "(now)",
                getattr(s.derive, "__name__", "") or "-",
            )
        console.print(services)


@app.command("materialize")
def features_materialize(
    views: Annotated[
        list[str] | None, typer.Argument(help="Feature views (default: every view).")
    ] = None,
    project: ProjectOption = Path("."),
    env: EnvOption = None,
    engine: EngineOption = Engine.embedded,
) -> None:
    """Rebuild feature views' offline tables from their sources and refresh the online store
    with each entity's latest values (what serving looks up).

    Example: esteira features materialize weather_at_origin -p examples/flight_delays

    Example (on Spark): esteira features materialize -p examples/flight_delays --engine spark
    """
    from esteira.project import load_project

    p = load_project(project)
    chosen = [p.features.view(v).name for v in views or sorted(p.feature_views)]
    if not chosen:
        raise typer.BadParameter("the project declares no feature view")
    console = new_console()
    if engine is Engine.spark:
        from esteira.runtime import training_threads
        from esteira.spark.features import materialize_spark
        from esteira.spark.session import spark_session

        spark = spark_session(training_threads(p.settings.runtime.threads))
        materialize = lambda name: materialize_spark(p.features, name, spark)  # noqa: E731
    else:
        materialize = p.features.materialize
    for name in chosen:
        with console.status(f"materializing {name} ({engine})"):
            done = materialize(name)
        table = f"features_{name}@v{done['offline_version']}"
        console.print(f"{name}: {done['rows']:,} rows → {table}, online store refreshed",
                      highlight=False)  # fmt: skip


@app.command("show")
def features_show(
    view: Annotated[str, typer.Argument(help="Feature view or service name.")],
    project: ProjectOption = Path("."),
    env: EnvOption = None,
) -> None:
    """Show one feature view (its definition, and its offline table's size and history) or
    feature service (what requests carry, what is looked up, what is derived).

    Example: esteira features show weather_at_origin --project examples/flight_delays
    """
    from esteira.project import load_project

    p = load_project(project)
    console = new_console()
    if view in p.feature_services:
        service = p.feature_services[view]
        console.print(f"[bold]{service.name}[/]  {service.description}", highlight=False)
        for label, value in (
            ("request", ", ".join(f"{f} ({k})" for f, k in service.request)),
            ("at", service.at or "(the time of the request)"),
            ("looks up", ", ".join(f"{v.name}: {', '.join(v.features)}" for v in service.views)),
            ("derive", getattr(service.derive, "__name__", "") or "none"),
        ):
            console.print(f"  {label:<14}{value}", highlight=False)
        return
    v = p.features.view(view)
    console.print(f"[bold]{v.name}[/]  {v.description}", highlight=False)
    for label, value in (
        ("source", v.source),
        ("entities", ", ".join(v.entities) or "(global: one row per time, no key)"),
        ("timestamp", v.timestamp or "(static: joined on the keys alone)"),
        ("features", ", ".join(v.features)),
        ("ttl", str(v.ttl or "none")),
        ("transform", "yes" if v.transform else "none"),
        ("offline table", v.offline_table),
    ):
        console.print(f"  {label:<14}{value}", highlight=False)
    if p.lake.exists(v.offline_table):
        rows, version = p.lake.read(v.offline_table)
        console.print(f"  {'materialized':<14}v{version}, {len(rows)} rows", highlight=False)
        console.print(rows.describe(include="all").T.to_string(max_cols=8), highlight=False)
    else:
        console.print(f"  {'materialized':<14}not yet: run the pipeline that materializes it")
