"""Terminal output: the live step display of a run and the tables of `runs` and `show`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

if TYPE_CHECKING:
    from esteira.ct.feed import BatchRow
    from esteira.ct.replay import PolicyResult
    from esteira.metadata import MonitoringRecord, PipelineRun, TableAccess
    from esteira.pipelines.runner import StepEvent

_STYLE = {
    "completed": "green",
    "cached": "cyan",
    "failed": "bold red",
    "died": "bold red",
    "running": "yellow",
}
_MARK = {"completed": "✓", "cached": "↺", "failed": "✗"}


class RunProgress:
    """A live table, one row per step: spinner while running, then its status and time."""

    def __init__(self, console: Console, steps: Sequence[str]) -> None:
        self.console = console
        self.rows: dict[str, tuple[str, float]] = {s: ("pending", 0.0) for s in steps}
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> RunProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(*exc)

    def __call__(self, event: StepEvent) -> None:
        self.rows[event.step] = (event.status, event.duration_s)
        self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        for step, (status, seconds) in self.rows.items():
            style = _STYLE.get(status, "dim")
            mark = (
                Spinner("dots", style="yellow") if status == "running" else _MARK.get(status, "·")
            )
            took = f"{seconds:.2f}s" if status in ("completed", "failed") else ""
            table.add_row(mark, f"[{style}]{step}[/]", f"[{style}]{status}[/]", took)
        return Group(table)


def runs_table(runs: Sequence[PipelineRun]) -> Table:
    table = Table(title="pipeline runs", title_justify="left")
    for col in ("run", "pipeline", "status", "started (UTC)", "duration", "trigger", "steps"):
        table.add_column(col, no_wrap=col in ("run", "started (UTC)"))
    for r in runs:
        table.add_row(
            r.id[:12],
            r.pipeline,
            f"[{_STYLE.get(r.shown_status, 'white')}]{r.shown_status}[/]",
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{r.duration_s:.2f}s" if r.duration_s is not None else "-",
            r.trigger,
            (r.only_step and f"only {r.only_step}") or "all",
        )
    return table


def _selection(run: PipelineRun) -> str:
    if run.only_step:
        return f"only {run.only_step}"
    return f"until {run.until_step}" if run.until_step else "all"


def run_details(run: PipelineRun) -> Group:
    head = Table.grid(padding=(0, 2))
    for label, value in (
        ("run", run.id),
        ("pipeline", f"{run.pipeline} (project {run.project})"),
        ("status", f"[{_STYLE.get(run.shown_status, 'white')}]{run.shown_status}[/]"),
        ("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC by {run.executor}"),
        ("duration", f"{run.duration_s:.2f}s" if run.duration_s is not None else "-"),
        ("trigger", f"{run.trigger} {run.trigger_reason}".strip()),
        ("code", f"{run.code_version} git {run.git_commit or '-'}"),
        ("mlflow run", run.mlflow_run_id or "- (nothing new to track: all steps cached)"),
        ("params", ", ".join(f"{k}={v}" for k, v in run.params.items()) or "-"),
    ):
        head.add_row(f"[bold]{label}[/]", str(value))

    steps = Table(title="steps", title_justify="left")
    for col in ("step", "status", "time", "inputs", "outputs", "data read/written", "metrics"):
        steps.add_column(col, overflow="fold")
    for s in run.steps:
        status = s.status + (f" ← {s.cached_from[:8]}" if s.cached_from else "")
        steps.add_row(
            s.step,
            f"[{_STYLE.get(s.status, 'white')}]{status}[/]",
            f"{s.duration_s:.2f}s" if s.duration_s is not None else "-",
            "\n".join(f"{io.name} {io.hash[:8]}" for io in s.inputs()),
            "\n".join(f"{io.name} {io.hash[:8]} ({io.kind})" for io in s.outputs()),
            _tables(s.tables),
            "\n".join(f"{k}={v:.4g}" for k, v in sorted(s.metrics.items())[:12])
            + ("\n…" if len(s.metrics) > 12 else ""),
        )
    parts: list[Table] = [head, steps]
    models = [m for s in run.steps for m in s.models]
    if models:
        registered = Table(title="registered models", title_justify="left")
        for col in ("model", "version", "uri", "mlflow run"):
            registered.add_column(col)
        for m in models:
            registered.add_row(m.name, m.version, m.model_uri, m.mlflow_run_id)
        parts.append(registered)
    return Group(*parts)


def _tables(accesses: Sequence[TableAccess]) -> str:
    """One line per table and mode, with the last version (a batch load writes many)."""
    last = {(t.mode, t.table): t.version for t in accesses}
    return "\n".join(f"{mode} {table}@v{v}" for (mode, table), v in last.items())


def policy_table(result: PolicyResult) -> Table:
    metric = result.metric or "metric"
    table = Table(title=f"policy: {result.policy}", title_justify="left")
    for col in ("batch", "champion", metric, "drift share", "action", "why"):
        table.add_column(col, overflow="fold")
    for r in result.rows:
        table.add_row(
            r.batch,
            f"v{r.champion}" if r.champion else "-",
            f"{r.metric:.4f}" if r.metric is not None else "-",
            f"{r.drift_share:.0%}" if r.drift_share is not None else "-",
            _action(r),
            "; ".join(filter(None, [r.reason, r.failed])) or r.quarantined,
        )
    return table


def _action(row: BatchRow) -> str:
    if row.quarantined:
        return "[red]quarantined[/]"
    if not row.retrained:
        return "kept"
    if row.failed:
        return "[red]retraining failed[/]"
    if row.champion_after != row.champion:
        return f"[green]retrained → v{row.champion_after}[/]"
    return f"retrained, gates kept v{row.champion}"


def replay_summary(results: Sequence[PolicyResult]) -> Table:
    table = Table(title="policies side by side", title_justify="left")
    table.add_column("batch")
    for r in results:
        table.add_column(f"{r.policy} {r.metric or 'metric'}", justify="right")
    for i, batch in enumerate(row.batch for row in results[0].rows):
        cells = []
        for r in results:
            row = r.rows[i]
            mark = "*" if row.retrained else ""
            cells.append(f"{row.metric:.4f}{mark}" if row.metric is not None else "-")
        table.add_row(batch, *cells)
    table.add_section()
    table.add_row("retrains", *(str(r.retrains) for r in results))
    table.add_row(
        f"mean {results[0].metric or 'metric'}",
        *(f"{r.mean_metric:.4f}" if r.mean_metric is not None else "-" for r in results),
    )
    table.add_row("time", *(f"{r.seconds:.0f} s" for r in results))
    table.caption = "* retrained after this batch (the next batch is scored by the new champion)"
    return table


def monitoring_table(record: MonitoringRecord, metric: str) -> Table:
    """Drift per column; the caption gives the record's key metric (`metric`, else its
    task's default)."""
    from esteira.monitoring.performance import MONITORED, key_metric, record_task

    metric, task = key_metric(metric, record), record_task(record)
    table = Table(
        title=f"{record.model} v{record.version} on {record.batch}: {record.rows:,} rows, "
        f"{record.drift_share:.0%} of features drifted",
        title_justify="left",
    )
    for col in ("column", "test", "figure", "limit", "PSI", "verdict"):
        table.add_column(col)
    for column, d in record.drifted.items():
        verdict = "[red]drifted[/]" if d["drifted"] else "[green]stable[/]"
        table.add_row(column, d["test"], f"{d['value']:.4g}", str(d["threshold"]),
                      f"{d['psi']:.3f}", verdict)  # fmt: skip
    if metric in record.metrics:
        shown = dict.fromkeys([metric, *MONITORED[task].metrics])
        figures = ", ".join(f"{m} {record.metrics[m]:.4f}" for m in shown if m in record.metrics)
        table.caption = f"{figures} on {record.metrics['rows']:,} labelled rows ({task})"
    return table


def failure_text(run: PipelineRun) -> str:
    """Tracebacks of the run's failed steps (user code errors deserve the whole story)."""
    return "\n".join(f"step {s.step} failed:\n{s.error}" for s in run.steps if s.error)
