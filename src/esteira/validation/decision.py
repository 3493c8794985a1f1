"""What the gates decide on and what they decide: the evidence gathered about a challenger,
each gate's check with its reason and figures, and the decision they make together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from esteira.config import GatesConfig


@dataclass
class Check:
    name: str
    passed: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evidence:
    model: str
    version: str
    champion_version: str | None
    rows: int
    task: str
    metric: str
    """The metric compared with the champion: `[gates] metric`, else the task's default."""
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_task: str | None = None
    undefined: dict[str, str] = field(default_factory=dict)
    """metric -> why it could not be computed on the test data (the challenger's scores)"""
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """segment value -> rows, challenger and champion value of the gate metric"""
    compatibility: dict[str, Any] | None = None
    tolerance_spent: float = 0.0
    """How much of `[gates] tolerance` the champion and the champions it replaced within
    the tolerance already took (0 for a champion that was better, or promoted by hand)."""


@dataclass
class Decision:
    model: str
    version: str
    champion_version: str | None
    checks: list[Check]
    task: str = ""
    metric: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    """The challenger's metrics on the test data."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        told = [c for c in self.checks if not c.passed] or self.checks
        return f"version {self.version} {verdict} the gates: " + "; ".join(
            f"{c.name}: {c.reason}" for c in told
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "champion_version": self.champion_version,
            "task": self.task,
            "metric": self.metric,
            "metrics": self.metrics,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }


Gate = Callable[[Evidence, GatesConfig], Check]
