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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.batches import period_of
from esteira.ct.feed import BatchFeed, BatchRow
from esteira.ct.triggers import Trigger, drift, from_config, new_data, performance, schedule
from esteira.errors import ConfigError

if TYPE_CHECKING:
    from esteira.config import TriggersConfig

POLICIES = ("never", "schedule", "drift", "performance", "monthly", "project")
"""`monthly` retrains on every new batch (the new_data trigger): the upper reference, named
for monthly batches, which the reference project has. `project`: the triggers its
`[ct.triggers]` turns on, together, as `esteira ct start` runs them."""
DEFAULT_CRON = "0 0 1 */3 *"  # quarterly
DEFAULT_DRIFT_SHARE = 0.5  # Evidently's dataset drift: half the columns


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
    """The one trigger a policy replays, with the project's limits where it set them (or,
    for `project`, all that the project turns on)."""
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
    if policy == "monthly":
        return [new_data]
    if policy == "project":
        return from_config(config, metric)
    raise ConfigError(f"unknown policy '{policy}'; choose from {', '.join(POLICIES)}")


def policy_home(root: Path, policy: str) -> Path:
    """Where a policy's replay keeps its stores (lake, registry, metadata)."""
    return Path(root).resolve() / ".esteira" / "replay" / policy


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
    from esteira.project import load_project

    started = time.perf_counter()
    home = policy_home(root, policy)
    shutil.rmtree(home, ignore_errors=True)
    project = load_project(root, environ={"ESTEIRA_HOME": str(home)})
    ct = project.settings.ct
    batches = period_of(batches, ct.batch_period).sorted(batches)
    feed = BatchFeed(project, policy_triggers(policy, ct.triggers, ct.metric), batches[0])
    result = PolicyResult(policy, feed.metric)
    feed.bootstrap(batches[0])
    for batch in batches:
        row = feed.feed(batch)
        result.metric = feed.metric
        result.rows.append(row)
        on_row(policy, row)
    result.seconds = time.perf_counter() - started
    return result
