"""Checks on what the steps return: every declared output, and the same types and schemas
in two runs. Both read the outputs the runner recorded in the metadata store (step, name,
artifact), never running a pipeline a third time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esteira.cicd.evidence import CheckResult, Evidence, failed_pipelines, not_judged

if TYPE_CHECKING:
    from esteira.artifacts import ArtifactRef
    from esteira.project import Project


def declared_outputs(e: Evidence) -> CheckResult:
    """Each step of the CI runs returned every output it declares: one that did not (a
    tuple too short, a dict without a key, one value for several names) fails, naming the
    step and the outputs it left out."""
    name = "declared_outputs"
    problems, evidence = [], {}
    for o in e.runs.values():
        if o.missing_outputs:
            missing = ", ".join(f"'{m}'" for m in o.missing_outputs)
            problems.append(
                f"{o.pipeline}.{o.failed_step} did not return its declared output {missing} "
                f"({o.error})"
            )
        elif o.result is None:  # failed for another reason: its later steps never ran
            problems.append(not_judged(o.pipeline))
        if o.run_id:
            evidence[o.pipeline] = {
                step: sorted(found) for step, found in recorded_outputs(e.project, o.run_id).items()
            }
    if problems:
        return CheckResult(name, False, "; ".join(problems), evidence)
    steps = sum(len(steps) for steps in evidence.values())
    outputs = sum(len(names) for steps in evidence.values() for names in steps.values())
    return CheckResult(
        name, True, f"{steps} steps returned their {outputs} declared outputs", evidence
    )


def stable_schemas(e: Evidence) -> CheckResult:
    """Two runs with the same params return outputs of the same Python type and, for a
    DataFrame, the same columns with the same dtypes (for an array, the same dtype). Any
    difference fails, naming the step, the output, the column and both dtypes."""
    name = "stable_schemas"
    problems = failed_pipelines(e)
    evidence: dict[str, Any] = {}
    for pipeline, again in e.reruns.items():
        if again.result is None:
            problems.append(f"{pipeline}: the second run failed: {again.describe()}")
            continue
        first = signatures(e.project, e.runs[pipeline].run_id)
        second = signatures(e.project, again.run_id)
        differences = compare(pipeline, first, second)
        evidence[pipeline] = {
            "runs": [e.runs[pipeline].run_id, again.run_id],
            "outputs": {f"{step}.{output}": s.describe() for (step, output), s in first.items()},
            "differences": differences,
        }
        problems += differences
    if problems:
        return CheckResult(name, False, "; ".join(problems), evidence)
    if not evidence:
        return CheckResult(name, True, "the project defines no pipeline", evidence)
    outputs = sum(len(v["outputs"]) for v in evidence.values())
    told = f"{outputs} outputs kept their types and schemas in a second run"
    return CheckResult(name, True, told, evidence)


# -- what an output is, read from its artifact --------------------------------------------


@dataclass(frozen=True)
class Signature:
    """An output's Python type and, for a DataFrame, its columns' dtypes."""

    type: str
    dtypes: tuple[tuple[str, str], ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, **({"dtypes": dict(self.dtypes)} if self.dtypes else {})}


def recorded_outputs(project: Project, run_id: str) -> dict[str, dict[str, ArtifactRef]]:
    """step -> declared output -> its artifact, for the steps of a run that completed (the
    records also hold reports a step saved, such as validation reports: left out here)."""
    from esteira.artifacts import artifact_ref

    record = project.metadata.run(run_id)
    pipeline = project.pipeline(record.pipeline)
    found: dict[str, dict[str, ArtifactRef]] = {}
    for step_run in record.steps:
        if step_run.status != "completed":
            continue
        declared = set(pipeline.step(step_run.step).outputs)
        found[step_run.step] = {
            io.name: artifact_ref(io) for io in step_run.outputs() if io.name in declared
        }
    return found


def signatures(project: Project, run_id: str) -> dict[tuple[str, str], Signature]:
    return {
        (step, output): signature_of(project, ref)
        for step, outputs in recorded_outputs(project, run_id).items()
        for output, ref in outputs.items()
    }


def signature_of(project: Project, ref: ArtifactRef) -> Signature:
    """Read from the artifact without loading the data where the format allows: a Parquet
    file's schema, a .npy header; JSON and models are loaded (they are small, or few)."""
    if ref.kind == "parquet":
        import pyarrow.parquet as pq

        empty = pq.read_schema(ref.path).empty_table().to_pandas()
        return Signature(
            _type_name(empty), tuple((str(c), str(t)) for c, t in empty.dtypes.items())
        )
    if ref.kind == "npy":
        import numpy as np

        array = np.load(ref.path, mmap_mode="r", allow_pickle=False)
        return Signature(f"numpy.ndarray[{array.dtype}]")
    return Signature(_type_name(project.artifacts.load(ref)))


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def compare(
    pipeline: str,
    first: dict[tuple[str, str], Signature],
    second: dict[tuple[str, str], Signature],
) -> list[str]:
    """What changed between two runs' outputs, one line per output or column."""
    found = []
    for key in sorted(first.keys() | second.keys()):
        where = f"{pipeline}.{key[0]} output '{key[1]}'"
        a, b = first.get(key), second.get(key)
        if a is None or b is None:
            found.append(f"{where} only in the {'second' if a is None else 'first'} run")
        elif a.type != b.type:
            found.append(f"{where} is a {a.type}, then a {b.type}")
        else:
            found += _column_changes(where, dict(a.dtypes), dict(b.dtypes))
    return found


def _column_changes(where: str, a: dict[str, str], b: dict[str, str]) -> list[str]:
    found = []
    for column in [*a, *(c for c in b if c not in a)]:
        if column not in b:
            found.append(f"{where} column '{column}' only in the first run ({a[column]})")
        elif column not in a:
            found.append(f"{where} column '{column}' only in the second run ({b[column]})")
        elif a[column] != b[column]:
            found.append(f"{where} column '{column}': {a[column]}, then {b[column]}")
    return found
