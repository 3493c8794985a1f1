"""Validate a batch against a reference profile and its table's history: schema skew,
value skew, and the batch as a whole.

Each check yields a finding with a severity. `error` findings fail the batch: missing
columns, changed types, too few or too many rows, duplicated rows, date-times outside the
batch's period, a null-rate jump, a flood of unseen categories (a sketch of known values
covers columns with many), most values out of range, a mean outside what history allows,
a spread or a share of negative values history never had, and, when the batch carries the
label, a constant label, classes out of proportion, or a column that suddenly predicts it
(rows.py, shifts.py, labels.py). Distribution distances (PSI for numbers, Jensen-Shannon
for categories) are reported for every column and only `warn` by default: seasons move
distributions (July's temperatures are 5 standard deviations above January-March's), which
is drift for retraining to follow, not broken data. Set `block_on_drift = true` to make
them fail the batch too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from esteira.config import Thresholds, ValidationConfig
from esteira.errors import EsteiraError
from esteira.summaries.distances import js_distance, psi
from esteira.summaries.profile import ColumnProfile, Profile, column_kind
from esteira.validation.findings import BATCH, Finding, over_limit
from esteira.validation.history import BatchHistory, ColumnHistory
from esteira.validation.labels import label_checks
from esteira.validation.rows import row_checks
from esteira.validation.shifts import shift_checks

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataValidationError", "Finding", "ValidationReport", "validate"]


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
        """Per-column figures for MLflow, e.g. `validation.psi.temp`; the batch's own, e.g.
        `validation.row_ratio`."""
        out = {
            f"validation.{f.check}" if f.column == BATCH else f"validation.{f.check}.{f.column}": (
                f.value
            )
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """A report as `to_dict` stored it."""
        findings = [Finding(**f) for f in data.get("findings", [])]
        return cls(data["rows"], data["reference_rows"], findings)


class DataValidationError(EsteiraError):
    """A batch failed validation; it was quarantined and the pipeline stopped."""

    def __init__(self, what: str, report: ValidationReport, quarantined_to: str = "") -> None:
        self.report = report
        where = f"; it was moved to table '{quarantined_to}'" if quarantined_to else ""
        reasons = "\n  - ".join(report.reasons())
        super().__init__(f"{what} failed data validation{where}:\n  - {reasons}")


def validate(
    df: pd.DataFrame,
    reference: Profile,
    config: ValidationConfig,
    history: BatchHistory | None = None,
) -> ValidationReport:
    """Check `df` against `reference` and, when given, its table's `history` (else what
    the profile alone tells); never raises for bad data, reports it."""
    history = history or BatchHistory.of_profile(reference)
    report = ValidationReport(len(df), reference.rows)
    add = report.findings.append
    report.findings.extend(row_checks(df, history, config))
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
        numbers = history.numbers.get(name)
        report.findings.extend(_value_checks(df[name], ref, numbers, history.gap,
                                             config.for_column(name)))  # fmt: skip
    report.findings.extend(label_checks(df, history, config))
    if config.extra_columns != "ignore":
        for name in sorted(set(df.columns) - set(reference.columns) - set(config.ignore_columns)):
            add(Finding(name, "extra", config.extra_columns, None, None, "not in the reference"))
    return report


def _value_checks(
    values: pd.Series,
    ref: ColumnProfile,
    history: ColumnHistory | None,
    gap: int,
    limits: Thresholds,
) -> list[Finding]:
    findings = [
        over_limit(
            ref.name,
            "null_rate_increase",
            float(values.isna().mean()) - ref.null_rate,
            limits.max_null_rate_increase,
            "null rate rose by {value:.1%} (limit {limit:.1%}); did the source lose it?",
        )
    ]
    present = values.dropna()
    if present.empty or not ref.counts:
        return findings
    drift = "error" if limits.block_on_drift else "warn"
    if ref.kind == "numeric":
        data = present.to_numpy(dtype=float)
        if history is not None:
            findings += shift_checks(data, ref, history, gap, limits)
        findings.append(
            over_limit(ref.name, "psi", psi(ref.counts, ref.bin_counts(present)), limits.max_psi,
                       "distribution changed: PSI {value:.3f} (limit {limit})", drift)
        )  # fmt: skip
    elif ref.kind == "categorical":
        unseen = ref.unseen_share(present)
        if unseen is not None:  # the reference knows every category, or has a sketch of them
            findings.append(
                over_limit(ref.name, "unseen_category_rate", unseen,
                           limits.max_unseen_category_rate,
                           "{value:.1%} of values are categories never seen (limit "
                           "{limit:.1%}); recoded or from another source?")
            )  # fmt: skip
        findings.append(
            over_limit(ref.name, "js", js_distance(ref.counts, ref.bin_counts(present)),
                       limits.max_js,
                       "category frequencies changed: Jensen-Shannon {value:.3f} (limit {limit})",
                       drift)
        )  # fmt: skip
    return findings
