"""Replay: feed past batches (hours, days, weeks, months or integers, see `esteira.batches`)
in order through the whole CT loop, once per retraining policy, to choose a policy from
real history.

For each batch: land and prepare it (data validation included), score it with the champion
trained before it (so no batch is ever scored by a model that saw it), record monitoring,
ask the policy's triggers, and retrain (gates and promotion included) when one fires. Each
policy runs in its own home under `.esteira/replay/<policy>`, so policies never share a
lake, a registry or a cache.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.batches import period_of
from esteira.ct.triggers import Fire, Trigger, drift, evaluate, performance, schedule
from esteira.errors import ConfigError, StepFailed
from esteira.validation.data import DataValidationError

if TYPE_CHECKING:
    from esteira.config import TriggersConfig
    from esteira.models import LoadedModel
    from esteira.summaries.profile import Profile

POLICIES = ("never", "schedule", "drift", "performance")
DEFAULT_CRON = "0 0 1 */3 *"  # quarterly
DEFAULT_DRIFT_SHARE = 0.5  # Evidently's dataset drift: half the columns


@dataclass
class BatchRow:
    batch: str
    champion: str | None
    metric: float | None
    drift_share: float | None
    retrained: bool = False
    reason: str = ""
    champion_after: str | None = None
    quarantined: str = ""


@dataclass
class PolicyResult:
    policy: str
    metric: str
    rows: list[BatchRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def retrains(self) -> int:
        return sum(r.retrained for r in self.rows)

    @property
    def mean_metric(self) -> float | None:
        values = [r.metric for r in self.rows if r.metric is not None]
        return sum(values) / len(values) if values else None


def policy_triggers(policy: str, config: TriggersConfig, metric: str) -> list[Trigger]:
    """The one trigger a policy replays, with the project's limits where it set them."""
    if policy == "never":
        return []
    if policy == "schedule":
        return [schedule(config.cron or DEFAULT_CRON)]
    if policy == "drift":
        return [
            drift(config.drift_share if config.drift_share is not None else DEFAULT_DRIFT_SHARE)
        ]
    if policy == "performance":
        if config.performance_below is None:
            raise ConfigError(
                "the performance policy needs [ct.triggers] performance_below in esteira.toml"
            )
        return [performance(metric, config.performance_below)]
    raise ConfigError(f"unknown policy '{policy}'; choose from {', '.join(POLICIES)}")


def replay(
    root: Path,
    batches: list[str],
    policies: list[str],
    on_row: Callable[[str, BatchRow], None] = lambda policy, row: None,
) -> list[PolicyResult]:
    return [_replay_policy(root, batches, policy, on_row) for policy in policies]


def _replay_policy(
    root: Path, batches: list[str], policy: str, on_row: Callable[[str, BatchRow], None]
) -> PolicyResult:
    from esteira.ct.controller import Controller
    from esteira.metrics import resolve_metric
    from esteira.models import load
    from esteira.monitoring.monitor import monitor_batch, reference_profile
    from esteira.monitoring.performance import key_metric
    from esteira.pipelines.runner import run_pipeline
    from esteira.project import load_project

    started = time.perf_counter()
    home = Path(root).resolve() / ".esteira" / "replay" / policy
    shutil.rmtree(home, ignore_errors=True)
    project = load_project(root, environ={"ESTEIRA_HOME": str(home)})
    ct = project.settings.ct
    triggers = policy_triggers(policy, ct.triggers, ct.metric)
    controller = Controller(project, triggers=triggers, log=lambda message: None)
    task = project.settings.model.task  # else known from the first monitoring record
    result = PolicyResult(policy, resolve_metric(ct.metric, task) if task else ct.metric)

    period = period_of(batches, ct.batch_period)
    batches = period.sorted(batches)
    bootstrap = period.previous(batches[0])
    controller.run([Fire("bootstrap", f"initial champion, trained up to {bootstrap}")], bootstrap)
    trained_at = period.start(batches[0])
    profiles: dict[str, tuple[LoadedModel, Profile]] = {}  # champion -> model, reference

    for batch in batches:
        state = controller.state(now=period.start(batch), newest_batch=batch)
        row = BatchRow(batch, state.champion, None, None)
        try:
            prepared = run_pipeline(
                project,
                ct.pipeline,
                {ct.batch_param: controller.batch_value(batch), **ct.batch_only_params},
                until=ct.data_output,
                trigger="replay",
                trigger_reason=f"prepare batch {batch}",
            )
        except StepFailed as e:
            if not isinstance(e.error, DataValidationError):
                raise  # a broken pipeline is not a bad batch
            row.quarantined = str(e.error).splitlines()[0]
            result.rows.append(row)
            on_row(policy, row)
            continue
        data = prepared.output(ct.data_output)
        if state.champion is not None:
            if state.champion not in profiles:  # each champion loaded and profiled once
                loaded = load(project, ct.model, state.champion)
                reference = reference_profile(
                    project, ct.model, state.champion, ct.reference_output, loaded
                )
                profiles[state.champion] = (loaded, reference)
            loaded, reference = profiles[state.champion]
            record, _ = monitor_batch(
                project, ct.model, state.champion, batch, data, ct.label, reference, "replay",
                project.settings.gates.segment, loaded=loaded,
            )  # fmt: skip
            result.metric = key_metric(ct.metric, record)
            row.metric, row.drift_share = record.metrics.get(result.metric), record.drift_share
        # Decide at the end of the batch, in simulated time, with what monitoring just saw.
        state = replace(
            controller.state(now=period.end(batch), newest_batch=batch),
            last_training_at=trained_at,
        )
        fires = evaluate(triggers, state)
        if fires:
            run = controller.run(fires, batch)
            row.retrained, row.reason = True, run.reason
            trained_at = period.end(batch)
        row.champion_after = controller.state(newest_batch=batch).champion
        result.rows.append(row)
        on_row(policy, row)
    result.seconds = time.perf_counter() - started
    return result
