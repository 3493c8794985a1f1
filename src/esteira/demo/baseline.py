"""Never retraining, measured: the demo's first champion scored on every batch it fed, on
the data monitoring scored that batch's champion on (the batch-only run's `[ct]
data_output`) and with the same metric, so the report can show what retraining bought.
Each batch is scored once: the figures are kept in demo.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esteira.demo.run import DemoRun
    from esteira.project import Project


def score_first_champion(project: Project, done: DemoRun,
                         say: Callable[[str], None] = print) -> bool:  # fmt: skip
    """Score `done.first_champion` on each batch fed and not yet scored (a quarantined one
    has no data to score); whether any was. A batch whose prepared data is gone from the
    artifact store stays unscored (the report shows it as a gap)."""
    from esteira.ct.feed import prepared_batch
    from esteira.errors import ArtifactError
    from esteira.metrics import resolve_metric
    from esteira.models import load
    from esteira.monitoring.monitor import batch_metrics

    wanted = [r.batch for r in done.rows if not r.quarantined and r.batch not in done.never]
    if not wanted or not done.first_champion:
        return False
    say(f"  never retraining, measured: v{done.first_champion} scored on {len(wanted)} "
        "batch(es) for the report")
    ct = project.settings.ct
    model = load(project, ct.model, done.first_champion)
    metric = resolve_metric(ct.metric, model.task, "[ct] metric")
    scored = False
    for batch in wanted:
        try:
            data = prepared_batch(project, batch)
        except ArtifactError:
            continue
        if data is not None:
            done.never[batch] = batch_metrics(project, model, data, ct.label).get(metric)
            scored = True
    return scored
