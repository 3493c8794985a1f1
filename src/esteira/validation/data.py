"""Validate a batch against a reference profile: schema skew and value skew.

Each check yields a finding with a severity. `error` findings fail the batch: missing
columns, changed types, a null-rate jump, a flood of unseen categories or out-of-range
values, a mean shifted by many reference standard deviations. Distribution distances
(PSI for numbers, Jensen-Shannon for categories) are reported for every column and only
`warn` by default: seasons move distributions (July's temperatures are 5 standard
deviations above January-March's), which is drift for retraining to follow, not broken
data. Set `block_on_drift = true` to make them fail the batch too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from esteira.config import Thresholds, ValidationConfig
from esteira.errors import EsteiraError
from esteira.summaries.distances import js_distance, psi
from esteira.summaries.profile import ColumnProfile, Profile, column_kind

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Finding:
    column: str
    check: str
    severity: Literal["error", "warn", "ok"]
    value: float | None
    threshold: float | None
    message: str


@dataclass
class ValidationReport:
    rows: int
    reference_rows: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warn"]

    def reasons(self) -> list[str]:
        return [f"{f.column}: {f.message}" for f in self.errors]

    def metrics(self) -> dict[str, float]:
        """Per-column figures for MLflow, e.g. `validation.psi.temp`."""
        out = {
            f"validation.{f.check}.{f.column}": f.value
            for f in self.findings
            if f.value is not None
        }
        return out | {
            "validation.errors": len(self.errors),
            "validation.warnings": len(self.warnings),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "findings": [asdict(f) for f in self.findings],
        }


class DataValidationError(EsteiraError):
    """A batch failed validation; it was quarantined and the pipeline stopped."""

    def __init__(self, what: str, report: ValidationReport, quarantined_to: str = "") -> None:
        self.report = report
        where = f"; it was moved to table '{quarantined_to}'" if quarantined_to else ""
        reasons = "\n  - ".join(report.reasons())
        super().__init__(f"{what} failed data validation{where}:\n  - {reasons}")


def validate(df: pd.DataFrame, reference: Profile, config: ValidationConfig) -> ValidationReport:
    """Check `df` against `reference`; never raises for bad data, reports it."""
    report = ValidationReport(len(df), reference.rows)
    add = report.findings.append
    expected = {n: c for n, c in reference.columns.items() if n not in config.ignore_columns}
    for name, ref in expected.items():
        if name not in df.columns:
            add(Finding(name, "missing", "error", None, None, f"missing (expected {ref.kind})"))
            continue
        kind = column_kind(df[name])
        if kind != ref.kind:
            message = f"is {kind} ({df[name].dtype}), expected {ref.kind}"
            add(Finding(name, "type", "error", None, None, message))
            continue
        report.findings.extend(_value_checks(df[name], ref, config.for_column(name)))
    if config.extra_columns != "ignore":
        for name in sorted(set(df.columns) - set(reference.columns) - set(config.ignore_columns)):
            add(Finding(name, "extra", config.extra_columns, None, None, "not in the reference"))
    return report


def _value_checks(values: pd.Series, ref: ColumnProfile, limits: Thresholds) -> list[Finding]:
    findings = [
        _limit(
            ref.name,
            "null_rate_increase",
            float(values.isna().mean()) - ref.null_rate,
            limits.max_null_rate_increase,
            "null rate rose by {value:.1%} (limit {limit:.1%})",
        )
    ]
    present = values.dropna()
    if present.empty or not ref.counts:
        return findings
    drift = "error" if limits.block_on_drift else "warn"
    if ref.kind == "numeric":
        data = present.to_numpy(dtype=float)
        outside = float(((data < ref.minimum) | (data > ref.maximum)).mean())
        shift = abs(float(data.mean()) - ref.mean) / max(ref.std or 0.0, 1e-12)
        findings += [
            _limit(ref.name, "out_of_range_rate", outside, limits.max_out_of_range_rate,
                   "{value:.1%} of values outside the reference range (limit {limit:.1%})"),
            _limit(ref.name, "mean_shift_std", shift, limits.max_mean_shift_std,
                   "mean moved {value:.1f} reference standard deviations (limit {limit})"),
            _limit(ref.name, "psi", psi(ref.counts, ref.bin_counts(present)), limits.max_psi,
                   "distribution changed: PSI {value:.3f} (limit {limit})", drift),
        ]  # fmt: skip
    elif ref.kind == "categorical":
        current = ref.bin_counts(present)
        if ref.counts[-1] == 0:  # every reference category is known: unseen ones mean something
            unseen = current[-1] / current.sum()
            findings.append(
                _limit(ref.name, "unseen_category_rate", float(unseen),
                       limits.max_unseen_category_rate,
                       "{value:.1%} of values are categories never seen (limit {limit:.1%})")
            )  # fmt: skip
        findings.append(
            _limit(ref.name, "js", js_distance(ref.counts, current), limits.max_js,
                   "category frequencies changed: Jensen-Shannon {value:.3f} (limit {limit})",
                   drift)
        )  # fmt: skip
    return findings


def _limit(
    column: str, check: str, value: float, limit: float, message: str, severity: str = "error"
) -> Finding:
    over = value > limit
    return Finding(
        column,
        check,
        severity if over else "ok",  # type: ignore[arg-type]
        round(value, 6),
        limit,
        message.format(value=value, limit=limit) if over else "ok",
    )
