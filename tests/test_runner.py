"""The runner's cache, resume, --only and lineage records, on small pipelines in tmp."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import calls, reset_calls

from esteira import load_project
from esteira.errors import ArtifactError, NotFound, PipelineDefinitionError, StepFailed
from esteira.pipelines.runner import run_pipeline

PIPELINE = """
from pathlib import Path

import pandas as pd

from esteira import pipeline, step

HERE = Path(__file__).parent


def called(name):
    with open(HERE / "calls.txt", "a") as f:
        f.write(name + "\\n")


@step
def source(ctx, rows: int = 4):
    called("source")
    return pd.DataFrame({"x": range(rows)})


@step
def scaled(source, factor: float = 2.0):
    called("scaled")
    return source.assign(y=source.x * factor)


@step
def total(ctx, scaled):
    called("total")
    if (HERE / "fail").exists():
        raise RuntimeError("the flag file says fail")
    ctx.log_metrics({"total": scaled.y.sum()})
    return {"total": float(scaled.y.sum())}


@step
def count(source):
    called("count")
    return {"rows": len(source)}


flow = pipeline("flow", [source, scaled, total, count])
"""


def run(root, **kwargs):
    return run_pipeline(load_project(root), "flow", **kwargs)


def test_second_run_is_fully_cached(write_project):
    root = write_project(PIPELINE)
    first = run(root)
    assert first.status == "completed"
    assert first.output("total") == {"total": 12.0}
    assert sorted(calls(root)) == ["count", "scaled", "source", "total"]
    reset_calls(root)
    second = run(root)
    assert calls(root) == []
    assert set(second.step_status.values()) == {"cached"}
    assert second.output("total") == {"total": 12.0}


def test_changed_code_reruns_that_step_and_its_dependents_only(write_project):
    root = write_project(PIPELINE)
    run(root)
    reset_calls(root)
    write_project(PIPELINE.replace("source.x * factor", "source.x * factor + 1"))
    result = run(root)
    assert sorted(calls(root)) == ["scaled", "total"]
    assert result.step_status == {
        "source": "cached",
        "scaled": "completed",
        "total": "completed",
        "count": "cached",
    }
    assert result.output("total") == {"total": 16.0}


def test_changed_param_reruns_only_the_steps_that_read_it(write_project):
    root = write_project(PIPELINE)
    run(root)
    reset_calls(root)
    result = run(root, params={"factor": 3.0})
    assert sorted(calls(root)) == ["scaled", "total"]
    assert result.output("total") == {"total": 18.0}
    reset_calls(root)
    run(root, params={"rows": 5})
    assert sorted(calls(root)) == ["count", "scaled", "source", "total"]


def test_same_output_content_keeps_downstream_cached(write_project):
    """The cache keys on the content of inputs: a rerun that yields the same data stops there."""
    root = write_project(PIPELINE)
    run(root)
    reset_calls(root)
    write_project(PIPELINE.replace('called("source")', 'called("source")  # reworded'))
    run(root)
    assert calls(root) == ["source"]


def test_failed_step_is_recorded_and_a_rerun_resumes_there(write_project):
    root = write_project(PIPELINE)
    (root / "fail").touch()
    with pytest.raises(StepFailed, match="step 'total' failed") as failure:
        run(root)
    project = load_project(root)
    record = project.metadata.run(failure.value.run_id)
    assert record.status == "failed"
    statuses = {s.step: s.status for s in record.steps}
    assert statuses == {
        "source": "completed",
        "scaled": "completed",
        "count": "completed",
        "total": "failed",
    }
    failed = next(s for s in record.steps if s.step == "total")
    assert "the flag file says fail" in failed.error and "Traceback" in failed.error

    (root / "fail").unlink()
    reset_calls(root)
    result = run(root)
    assert calls(root) == ["total"]
    assert result.step_status["source"] == result.step_status["scaled"] == "cached"


def test_no_cache_runs_everything(write_project):
    root = write_project(PIPELINE)
    run(root)
    reset_calls(root)
    run(root, use_cache=False)
    assert sorted(calls(root)) == ["count", "scaled", "source", "total"]


def test_only_runs_one_step_on_the_latest_upstream_artifacts(write_project):
    root = write_project(PIPELINE)
    with pytest.raises(NotFound, match="no completed run of pipeline 'flow' has produced 'scaled'"):
        run(root, only="total")
    run(root, params={"factor": 10.0})
    reset_calls(root)
    write_project(PIPELINE.replace('{"total": float(', '{"by_hand": True, "total": float('))
    result = run(root, only="total")
    assert calls(root) == ["total"]
    assert result.output("total") == {"by_hand": True, "total": 60.0}
    record = load_project(root).metadata.run(result.run_id)
    assert record.only_step == "total"
    (step_run,) = record.steps
    assert [i.name for i in step_run.inputs()] == ["scaled"]
    assert step_run.metrics == {"total": 60.0}
    assert record.mlflow_run_id  # tracked just like a full run


def test_cache_is_not_trusted_when_an_artifact_was_deleted(write_project):
    root = write_project(PIPELINE)
    first = run(root)
    first.outputs["scaled"].path.unlink()
    reset_calls(root)
    run(root)
    assert sorted(calls(root)) == ["scaled"]  # same content again: total stays cached


def test_an_artifact_changed_on_disk_is_never_read_as_the_steps_output(write_project):
    root = write_project(PIPELINE)
    first = run(root)
    scaled = first.outputs["scaled"].path
    source = first.outputs["source"].path
    scaled.write_bytes(b"garbage")  # another size: the hit is not trusted, the step reruns
    reset_calls(root)
    run(root)
    assert sorted(calls(root)) == ["scaled"]
    # The same size, other bytes (as a file swapped for another): found when it is read.
    damaged = bytearray(source.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    source.write_bytes(bytes(damaged))
    with pytest.raises(ArtifactError, match="is damaged: its content changed on disk") as failed:
        run(root, only="scaled")
    assert str(source) in str(failed.value)
    assert load_project(root).metadata.runs(limit=1)[0].status == "failed"
    source.unlink()  # what the message says to do
    reset_calls(root)
    run(root)
    assert "source" in calls(root)


LAKE_PIPELINE = """
from pathlib import Path

from esteira import pipeline, step

HERE = Path(__file__).parent


@step
def summary(ctx):
    with open(HERE / "calls.txt", "a") as f:
        f.write("summary\\n")
    df = ctx.read_table("events")
    return {"rows": len(df)}


flow = pipeline("flow", [summary])
"""


def test_new_table_version_invalidates_the_steps_that_read_it(write_project):
    root = write_project(LAKE_PIPELINE)
    project = load_project(root)
    project.lake.append("events", pd.DataFrame({"v": [1, 2]}))
    assert run_pipeline(project, "flow").output("summary") == {"rows": 2}
    assert run_pipeline(project, "flow").step_status == {"summary": "cached"}
    project.lake.append("events", pd.DataFrame({"v": [3]}))
    result = run_pipeline(project, "flow")
    assert result.step_status == {"summary": "completed"}
    assert result.output("summary") == {"rows": 3}
    record = project.metadata.run(result.run_id)
    assert [(t.mode, t.table, t.version) for t in record.steps[0].tables] == [("read", "events", 1)]


def test_run_records_lineage(write_project):
    root = write_project(PIPELINE)
    result = run(root)
    record = load_project(root).metadata.run(result.run_id)
    assert record.pipeline == "flow" and record.status == "completed"
    assert record.params == {"rows": 4, "factor": 2.0}
    assert "@" in record.executor
    assert record.code_version and record.duration_s > 0 and record.ended_at
    by_name = {s.step: s for s in record.steps}
    scaled = by_name["scaled"]
    assert scaled.code_hash and scaled.cache_key and scaled.duration_s is not None
    assert scaled.params == {"factor": 2.0}
    assert [(i.name, i.hash) for i in scaled.inputs()] == [
        ("source", result.outputs["source"].hash)
    ]
    assert [(o.name, o.kind) for o in scaled.outputs()] == [("scaled", "parquet")]
    assert by_name["total"].mlflow_run_id == result.mlflow_run_id


def test_cache_summary_and_prune(write_project):
    from esteira.pipelines.cache import prune, summary

    root = write_project(PIPELINE)
    project = load_project(root)
    for factor in (2.0, 3.0, 4.0):
        run_pipeline(project, "flow", params={"factor": factor})
    run_pipeline(project, "flow", params={"factor": 4.0})
    entries = {e.step: e for e in summary(project)}
    assert (entries["scaled"].executions, entries["scaled"].reuses) == (3, 1)
    assert (entries["source"].executions, entries["source"].reuses) == (1, 3)
    assert entries["scaled"].stored_bytes > 0

    report = prune(project, keep_last=1, older_than_days=0)
    assert report.removed == 4  # scaled and total of factors 2 and 3
    assert report.freed_bytes > 0
    reset_calls(root)
    assert run_pipeline(project, "flow", params={"factor": 4.0}).step_status["scaled"] == "cached"
    result = run_pipeline(project, "flow", params={"factor": 2.0})
    assert sorted(calls(root)) == ["scaled", "total"]  # pruned: a miss, not a wrong answer
    assert result.output("total") == {"total": 12.0}


def test_until_runs_only_what_a_step_needs(write_project):
    root = write_project(PIPELINE)
    result = run(root, until="scaled")
    assert sorted(calls(root)) == ["scaled", "source"]
    assert set(result.step_status) == {"source", "scaled"}
    record = load_project(root).metadata.run(result.run_id)
    assert record.until_step == "scaled"


HELPERS = """
from esteira import pipeline, step
from esteira.features import feature_view

view = feature_view("v", source="t", entities=["k"], features=["f"])


def helper(x):
    return x + 1


@step
def uses(n: int = 1):
    return {"value": helper(n), "view": view.name}


@step
def other(n: int = 1):
    return {"value": n}


flow = pipeline("flow", [uses, other])
"""


def test_editing_a_helper_or_a_view_reruns_the_steps_that_use_them(write_project):
    hashes = []
    for code in (
        HELPERS,
        HELPERS.replace("return x + 1", "return x + 2"),
        HELPERS.replace('features=["f"]', 'features=["f", "g"]'),
    ):
        flow = load_project(write_project(code)).pipelines["flow"]
        hashes.append({s.name: s.code_hash for s in flow.steps})
    assert hashes[0]["uses"] != hashes[1]["uses"] != hashes[2]["uses"]
    assert hashes[0]["other"] == hashes[1]["other"] == hashes[2]["other"]


def test_a_step_that_reads_a_setting_reruns_when_it_changes(write_project):
    root = write_project(
        """
        from pathlib import Path

        from esteira import pipeline, step

        @step(settings=("validation.max_psi",))
        def limit(ctx):
            with open(Path(__file__).parent / "calls.txt", "a") as f:
                f.write("limit ")
            return ctx.project.settings.validation.max_psi

        @step(settings=("validation.nope",))
        def broken(ctx):
            return 0

        flow = pipeline("flow", [limit])
        wrong = pipeline("wrong", [broken])
        """
    )
    assert run(root).output("limit") == 0.25
    assert run(root).step_status == {"limit": "cached"}
    (root / "esteira.toml").write_text("[validation]\nmax_psi = 0.5\n")
    assert run(root).output("limit") == 0.5
    assert calls(root) == ["limit", "limit"]
    with pytest.raises(PipelineDefinitionError, match=r"reads setting 'validation\.nope'"):
        run_pipeline(load_project(root), "wrong")
