"""One result of one data check, and how a figure over its limit becomes one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BATCH = "(batch)"
"""The `column` of findings about the batch as a whole (its rows, its duplicates)."""


@dataclass
class Finding:
    column: str
    check: str
    severity: Literal["error", "warn", "ok"]
    value: float | None
    threshold: float | None
    message: str


def over_limit(
    column: str, check: str, value: float, limit: float, message: str, severity: str = "error"
) -> Finding:
    """A finding of `severity` when `value` exceeds `limit`, else "ok"; `message` may use
    {value} and {limit}."""
    over = value > limit
    return Finding(
        column,
        check,
        severity if over else "ok",  # type: ignore[arg-type]
        round(value, 6),
        limit,
        message.format(value=value, limit=limit) if over else "ok",
    )
