"""The views of models in use: monitoring (drift per feature over batches, the metric over
time, segments, alerts, quarantined batches) and serving (the prediction log's volume and
latency)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from markupsafe import Markup

from esteira.dashboard import observed
from esteira.dashboard.charts import Cell, bar_chart, heatmap, line_chart
from esteira.dashboard.layout import cards, empty, link, number, table, when

if TYPE_CHECKING:
    from esteira.dashboard.data import Environment
    from esteira.dashboard.layout import Place
    from esteira.dashboard.observed import Monitoring


def monitoring(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>Monitoring of {}</h1>").format(place.model or "-")]
    found = observed.monitoring(env, place.model) if place.model else None
    if found is None:
        parts.append(empty(
            f"No monitoring records of {place.model or 'a model'} yet in {place.env}: monitor "
            "served or scored data", place.command("monitor --since 24h"),
            place.command("monitor --input TABLE --batch BATCH"),
        ))  # fmt: skip
    else:
        parts.append(_drift_and_metric(place, env, found))
    parts.append(Markup("<h2 id=alerts>Alerts</h2>"))
    alerts = observed.alerts(env)
    parts.append(table(
        ["when (UTC)", "kind", "subject", "message", "run"],
        [[when(a.created_at), a.kind, a.subject, a.message,
          link(place.href(f"/runs/{a.pipeline_run_id}"), (a.pipeline_run_id or "")[:12])
          if a.pipeline_run_id else "-"] for a in alerts],
    ) if alerts else empty("No alerts"))  # fmt: skip
    parts.append(Markup("<h2 id=quarantine>Quarantined batches</h2>"))
    held = observed.quarantined(env)
    parts.append(table(
        ["quarantined (UTC)", "table", "batch", "rows", "why", "run"],
        [[when(q.at), q.table, q.batch, f"{q.rows:,}", q.reasons,
          link(place.href(f"/runs/{q.run_id}"), q.run_id[:12]) if q.run_id else "-"]
         for q in held],
        numeric=[3],
    ) if held else empty("No batch in quarantine"))  # fmt: skip
    return Markup("").join(parts)


def _drift_and_metric(place: Place, env: Environment, found: Monitoring) -> Markup:
    latest = found.records[-1]
    value = latest.metrics.get(found.metric)
    parts = [cards([
        ("latest batch", f"{latest.batch} (v{latest.version})", ""),
        ("rows", f"{latest.rows:,}", ""),
        ("drift share", f"{latest.drift_share:.0%}", ""),
        (found.metric, number(value), ""),
        ("records", len(found.records), ""),
    ])]  # fmt: skip
    parts.append(drift_heatmap(found, "batch"))
    triggers = env.settings.ct.triggers
    if any(v is not None for v in found.metric_values()):
        parts.append(line_chart(found.batches, {found.metric: found.metric_values()},
                                f"{found.metric} over batches (labelled data)",
                                limit=triggers.performance_below))  # fmt: skip
    else:
        parts.append(empty(f"No {found.metric} yet: the records had no labels",
                           place.command("monitor --labels TABLE")))
    parts.append(line_chart(found.batches, {"drift share": found.drift_shares()},
                            "Share of the model's inputs drifted", limit=triggers.drift_share))
    if found.segments:
        names = sorted({k for m in found.segments.values() for k in m if k != "rows"})
        rows = [[segment, f"{m.get('rows', 0):,}", *(number(m.get(n)) for n in names)]
                for segment, m in sorted(found.segments.items())]  # fmt: skip
        parts.append(Markup("<h2>Segments of batch {}</h2>").format(latest.batch))
        parts.append(table(["segment", "rows", *names], rows,
                           numeric=list(range(1, len(names) + 2))))  # fmt: skip
    return Markup("").join(parts)


def drift_heatmap(found: Monitoring, per: str) -> Markup:
    """Each monitored column's drift on each record (`per`: what a record is, e.g. batch)."""
    cells = {
        (c.column, c.batch): Cell(c.level, c.drifted,
                                  f"{c.test} {c.value:.4g} (limit {c.threshold:g}), "
                                  f"{'drifted' if c.drifted else 'stable'}"
                                  f"{'' if c.counted else ', not counted'}")
        for c in found.cells
    }  # fmt: skip
    return heatmap(found.columns, found.batches, cells,
                   f"Drift per column and {per} (figure against its limit; red: drifted)")


def serving(place: Place, env: Environment) -> Markup:
    parts = [Markup("<h1>Serving of {}</h1>").format(place.model or "-")]
    found = observed.traffic(env, place.model) if place.model else None
    if found is None or not found.requests:
        return Markup("").join([*parts, empty(
            f"No prediction log of {place.model or 'a model'} yet in {place.env}: serve the "
            "champion, and every answer is logged", place.command("serve --port 8080"))])
    served = ", ".join(f"v{v}: {n:,}" for v, n in sorted(found.versions.items()))
    parts.append(cards([
        ("requests", f"{found.requests:,}", ""),
        ("rows predicted", f"{found.rows:,}", ""),
        ("failed requests", f"{found.errors:,}", ""),
        ("shadow rows", f"{found.shadow_rows:,}", ""),
        ("by version", served, ""),
        *((f"{name} latency", f"{ms:.1f} ms", "")
          for name, ms in zip(("p50", "p99"), found.overall_ms or (), strict=False)),
    ]))  # fmt: skip
    parts.append(Markup("<p class=sub>from {} to {} UTC, per {} (the newest {})</p>").format(
        when(found.first), when(found.last), found.period, len(found.buckets)))
    parts.append(bar_chart(list(zip(found.buckets, found.volume, strict=True)),
                           f"Requests per {found.period}"))  # fmt: skip
    parts.append(line_chart(found.buckets, {"p50": found.p50_ms, "p99": found.p99_ms},
                            f"Latency per {found.period} (ms)"))  # fmt: skip
    parts.append(Markup("<p class=sub>from the lake table <code>{}</code></p>").format(found.table))
    return Markup("").join(parts)
