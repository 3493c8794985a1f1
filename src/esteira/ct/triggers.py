"""Triggers: each is a function from the state of a model to "fire, because ..." or None.

State is a plain value, so the same triggers decide in the live controller (wall-clock time,
the lake as it is) and in a replay (simulated time, batches fed one by one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from esteira.batches import period_of
from esteira.metrics import metric
from esteira.monitoring.performance import key_metric

if TYPE_CHECKING:
    from esteira.config import TriggersConfig
    from esteira.metadata import MonitoringRecord


@dataclass(frozen=True)
class Fire:
    trigger: str
    reason: str


@dataclass(frozen=True)
class CTState:
    model: str
    now: datetime
    champion: str | None
    last_training_at: datetime | None
    """When the model was last trained: the champion's run, or the latest finished CT run
    if later (a challenger the gates refused was a training all the same)."""
    trained_batch: str | None
    """The newest batch the champion was trained on."""
    newest_batch: str | None
    """The newest batch in the lake."""
    monitoring: MonitoringRecord | None
    """The latest monitoring record of the champion."""
    batch_period: str | None = None
    """How batches are labelled (`[ct] batch_period`); None: told from the labels."""
    tried_batch: str | None = None
    """The batch of the latest finished CT run, whatever it led to: a batch that trained a
    challenger the gates refused, or that was quarantined, is not new data again."""

    def is_news(self, record: MonitoringRecord) -> bool:
        """Whether monitoring saw this after the last training: a drift or a metric that
        training has already answered (even with a refused challenger) fires no more."""
        last = self.last_training_at
        return last is None or record.at is None or naive_utc(record.at) > naive_utc(last)


def naive_utc(when: datetime) -> datetime:
    """UTC without its zone: the store gives some times back naive, all of them UTC."""
    return when.replace(tzinfo=None)


Trigger = Callable[[CTState], Fire | None]


def no_champion(state: CTState) -> Fire | None:
    if state.champion is not None:
        return None
    newest, tried = state.newest_batch, state.tried_batch
    if tried and newest and not _after(state, newest, tried):  # that batch made no champion
        return None
    return Fire("bootstrap", f"'{state.model}' has no champion yet")


def schedule(cron: str) -> Trigger:
    from croniter import croniter

    if not croniter.is_valid(cron):
        from esteira.errors import ConfigError

        raise ConfigError(f"[ct.triggers] cron = {cron!r} is not a valid cron expression")

    def check(state: CTState) -> Fire | None:
        # A tick at exactly `now` is due: croniter's get_prev is strictly before its start.
        due = croniter(cron, state.now + timedelta(seconds=1)).get_prev(datetime)
        if state.last_training_at is None or due > naive_utc(state.last_training_at):
            last = f"{state.last_training_at:%Y-%m-%d %H:%M}" if state.last_training_at else "never"
            return Fire("schedule", f"'{cron}' was due {due:%Y-%m-%d %H:%M}; last training {last}")
        return None

    return check


def new_data(state: CTState) -> Fire | None:
    newest, trained, tried = state.newest_batch, state.trained_batch, state.tried_batch
    if not newest or not _after(state, newest, trained) or not _after(state, newest, tried):
        return None
    reason = f"batch {newest} is newer than {trained or 'any'} the champion was trained on"
    if tried and tried != trained:
        reason += f" and than {tried}, the last CT run's"
    return Fire("new_data", reason)


def _after(state: CTState, batch: str, than: str | None) -> bool:
    return than is None or period_of([batch, than], state.batch_period).is_after(batch, than)


def drift(share: float) -> Trigger:
    from esteira.monitoring.drift import counted

    def check(state: CTState) -> Fire | None:
        m = state.monitoring
        if m is None or m.drift_share < share or not state.is_news(m):
            return None
        drifted = [
            f"{column} ({d['test']} {d['value']:.3g})"
            for column, d in m.drifted.items()
            if d["drifted"] and counted(d)
        ]
        listed = ", ".join(drifted[:4]) + (", ..." if len(drifted) > 4 else "")
        return Fire(
            "drift",
            f"{m.drift_share:.0%} of features drifted in batch {m.batch} (limit {share:.0%}): "
            f"{listed}",
        )

    return check


def performance(configured: str, threshold: float) -> Trigger:
    """Fires when the champion's metric (`configured`, else its task's) is worse than
    `threshold`, in the metric's direction."""
    if configured:
        metric(configured, "[ct] metric")  # a misspelt name fails now, not at the first batch

    def check(state: CTState) -> Fire | None:
        rec = state.monitoring
        if rec is None or not state.is_news(rec):
            return None
        name = key_metric(configured, rec)
        m, value = metric(name), rec.metrics.get(name)
        if value is None or m.worse_by(value, threshold) <= 0:
            return None
        return Fire(
            "performance",
            f"{name} {value:.4f} of v{rec.version} on batch {rec.batch} is {m.worse_side} "
            f"{threshold}",
        )

    return check


def from_config(config: TriggersConfig, metric_name: str) -> list[Trigger]:
    """The triggers `[ct.triggers]` turns on (a model with no champion is always trained)."""
    triggers: list[Trigger] = [no_champion]
    if config.cron:
        triggers.append(schedule(config.cron))
    if config.new_data:
        triggers.append(new_data)
    if config.drift_share is not None:
        triggers.append(drift(config.drift_share))
    if config.performance_below is not None:
        triggers.append(performance(metric_name, config.performance_below))
    return triggers


def evaluate(triggers: list[Trigger], state: CTState) -> list[Fire]:
    return [fire for t in triggers if (fire := t(state)) is not None]
