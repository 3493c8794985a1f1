"""Batch labels as a batch table has them: hours, days, ISO weeks, months or integers.

One period kind maps each label to a position on a line (an integer), so every kind orders,
counts and steps the same way: `10` comes after `9` (not before it, as text would have it),
and `2015-W53` is followed by `2016-W01`. Each batch also has a simulated start time, at
which a replay asks the schedule trigger whether a retraining was due; an integer batch `n`
is simulated as day `n` after 1970-01-01, so a daily cron is due at every batch.

Used by continuous training (triggers, controller, replay) and by data validation (which
batches come before a new one), so it sits below both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from esteira.errors import ConfigError


class BatchLabelError(ConfigError):
    """A batch label is not one of the forms a batch may take, or batches mix forms."""


@dataclass(frozen=True)
class BatchPeriod:
    """One kind of batch label, and its arithmetic."""

    kind: str
    example: str
    pattern: re.Pattern[str]
    to_index: Callable[[re.Match[str]], int]
    """A matched label's position; the next batch is one more."""
    to_label: Callable[[int], str]
    to_start: Callable[[int], datetime]
    """When the batch at a position starts, in (simulated) time."""

    def index(self, label: Any) -> int:
        text = as_label(label)
        found = self.pattern.fullmatch(text)
        try:
            if found:
                return self.to_index(found)
        except ValueError as e:  # 2013-13, 2013-W54, 2013-02-30
            raise BatchLabelError(f"batch {text!r} is not a valid {self.kind}: {e}") from None
        raise BatchLabelError(
            f"batch {text!r} is not a {self.kind} (like {self.example}); batches are "
            f"{FORMS}, one form per batch table (see [ct] batch_period)"
        )

    def label(self, index: int) -> str:
        return self.to_label(index)

    def range(self, first: Any, last: Any) -> list[str]:
        """Every batch from `first` to `last`, both included, in order."""
        start, end = self.index(first), self.index(last)
        if end < start:
            raise BatchLabelError(f"batch {as_label(last)} comes before {as_label(first)}")
        return [self.to_label(i) for i in range(start, end + 1)]

    def previous(self, label: Any) -> str:
        return self.to_label(self.index(label) - 1)

    def next(self, label: Any) -> str:
        return self.to_label(self.index(label) + 1)

    def sorted(self, labels: Iterable[Any]) -> list[str]:
        return sorted({as_label(b) for b in labels}, key=self.index)

    def newest(self, labels: Iterable[Any]) -> str | None:
        ordered = self.sorted(labels)
        return ordered[-1] if ordered else None

    def is_after(self, label: Any, other: Any) -> bool:
        return self.index(label) > self.index(other)

    def start(self, label: Any) -> datetime:
        """When the batch starts: the time a replay sees as now while it scores the batch."""
        return self.to_start(self.index(label))

    def end(self, label: Any) -> datetime:
        """When the batch ends (the next one starts): the time a replay decides at."""
        return self.to_start(self.index(label) + 1)


def _day(match: re.Match[str]) -> date:
    return date(int(match["y"]), int(match["m"]), int(match["d"]))


def _hour(match: re.Match[str]) -> int:
    hour = int(match["h"])
    if hour > 23:
        raise ValueError(f"hour {hour} is not between 00 and 23")
    return hour


def _month(match: re.Match[str]) -> int:
    month = int(match["m"])
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not between 01 and 12")
    return month


def _week_label(index: int) -> str:
    year, week, _ = date.fromordinal(index * 7 + 1).isocalendar()  # ordinal 1 is a Monday
    return f"{year}-W{week:02d}"


def _week_index(match: re.Match[str]) -> int:
    monday = date.fromisocalendar(int(match["y"]), int(match["w"]), 1)
    return (monday.toordinal() - 1) // 7


def _at(day: int, hour: int = 0) -> datetime:
    return datetime.combine(date.fromordinal(day), datetime.min.time()) + timedelta(hours=hour)


_EPOCH = date(1970, 1, 1).toordinal()

PERIODS: dict[str, BatchPeriod] = {
    period.kind: period
    for period in (
        BatchPeriod(
            "hour",
            "2013-04-05T13",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<h>\d{2})"),
            lambda m: _day(m).toordinal() * 24 + _hour(m),
            lambda i: f"{_at(i // 24, i % 24):%Y-%m-%dT%H}",
            lambda i: _at(i // 24, i % 24),
        ),
        BatchPeriod(
            "day",
            "2013-04-05",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"),
            lambda m: _day(m).toordinal(),
            lambda i: date.fromordinal(i).isoformat(),
            _at,
        ),
        BatchPeriod(
            "week",
            "2013-W14",
            re.compile(r"(?P<y>\d{4})-W(?P<w>\d{2})"),
            _week_index,
            _week_label,
            lambda i: _at(i * 7 + 1),
        ),
        BatchPeriod(
            "month",
            "2013-04",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})"),
            lambda m: int(m["y"]) * 12 + _month(m) - 1,
            lambda i: f"{i // 12:04d}-{i % 12 + 1:02d}",
            lambda i: datetime(i // 12, i % 12 + 1, 1),
        ),
        BatchPeriod(
            "integer",
            "7",
            re.compile(r"-?\d+"),
            lambda m: int(m[0]),
            str,
            lambda i: _at(_EPOCH + i),
        ),
    )
}
FORMS = ", ".join(f"{p.kind}s ({p.example})" for p in PERIODS.values())


def as_label(value: Any) -> str:
    """A batch value as text: dates and midnight timestamps (a date column read by pandas)
    as days, other times as hours."""
    if isinstance(value, datetime):
        return (
            f"{value:%Y-%m-%d}" if value.time() == datetime.min.time() else f"{value:%Y-%m-%dT%H}"
        )
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def period_of(labels: Iterable[Any], kind: str | None = None) -> BatchPeriod:
    """The period `kind` names (`[ct] batch_period`), or else the one all `labels` share."""
    if kind is not None:
        if kind not in PERIODS:
            raise BatchLabelError(f"batch period {kind!r}: choose one of {', '.join(PERIODS)}")
        return PERIODS[kind]
    texts = [as_label(b) for b in labels]
    kinds = {_kind(t) for t in texts}
    if len(kinds) == 1:
        return PERIODS[kinds.pop()]
    if not kinds:
        raise BatchLabelError(f"no batch to tell the period from; batches are {FORMS}")
    raise BatchLabelError(
        f"batches {', '.join(texts)} mix {', '.join(sorted(kinds))}: give them in one form"
    )


def _kind(text: str) -> str:
    for period in PERIODS.values():
        if period.pattern.fullmatch(text):
            return period.kind
    raise BatchLabelError(f"batch {text!r} is not a batch label: batches are {FORMS}")


def batches_before(labels: Iterable[Any], batch: Any, kind: str | None = None) -> list[Any]:
    """The `labels` that come before `batch`, oldest first, as given (an integer column's
    values stay integers). Labels of none of the forms (free text) keep their own order."""
    labels = list(labels)
    try:
        period = period_of([*labels, batch], kind)
    except BatchLabelError:
        if kind is not None:
            raise
        return sorted(b for b in labels if b < batch)
    return sorted((b for b in labels if period.is_after(batch, b)), key=period.index)
