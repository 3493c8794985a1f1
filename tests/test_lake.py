from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from esteira.errors import LakeError
from esteira.lake import Lake, fingerprint


@pytest.fixture(params=["folder", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """Each test on a lake in a folder and on object storage (a local S3 server)."""
    if request.param == "folder":
        return Lake(tmp_path)
    return Lake(request.getfixturevalue("s3_lake"))


def test_append_read_versions_and_history(lake: Lake):
    assert lake.version("events") is None and lake.tables() == []
    assert lake.append("events", pd.DataFrame({"k": [1, 2], "batch": ["a", "a"]})) == 0
    assert lake.append("events", pd.DataFrame({"k": [3], "batch": ["b"]})) == 1
    df, version = lake.read("events")
    assert version == 1 and sorted(df.k) == [1, 2, 3]
    old, version = lake.read("events", version=0)
    assert version == 0 and sorted(old.k) == [1, 2]
    only_b, _ = lake.read("events", filters=[("batch", "=", "b")], columns=["k"])
    assert only_b.k.tolist() == [3] and list(only_b.columns) == ["k"]
    assert lake.tables() == ["events"]
    assert len(lake.history("events")) == 2


def test_replace_where_is_idempotent(lake: Lake):
    batch = pd.DataFrame({"k": [1, 2], "batch": ["2013-01"] * 2})
    lake.replace("t", batch, where="batch = '2013-01'", partition_by=["batch"])
    lake.replace("t", pd.DataFrame({"k": [9], "batch": ["2013-02"]}), where="batch = '2013-02'")
    lake.replace("t", batch, where="batch = '2013-01'")  # the same batch again
    df, version = lake.read("t")
    assert version == 2
    assert sorted(df.k) == [1, 2, 9]


def test_a_landed_batch_is_known_until_a_change_may_have_touched_it(lake: Lake):
    """`land` records the batch and its rows' fingerprint in the Delta commit; `landed`
    tells which batches still hold exactly that: landing other batches and compacting
    files keep them, any other write hides every batch landed before it."""
    jan = pd.DataFrame({"k": [1, 2], "batch": ["2013-01"] * 2})
    feb = pd.DataFrame({"k": [3], "batch": ["2013-02"]})
    assert lake.landed("t") == {}
    lake.land("t", jan, "2013-01", partition_by=["batch"], metadata={"esteira.note": "a"})
    lake.land("t", feb, "2013-02", partition_by=["batch"])
    found = lake.landed("t")
    assert found["2013-01"]["esteira.fingerprint"] == fingerprint(jan)
    assert found["2013-01"]["esteira.note"] == "a" and found["2013-01"]["version"] == 0
    assert found["2013-02"]["esteira.fingerprint"] == fingerprint(feb)

    changed = feb.assign(k=[4])
    lake.land("t", changed, "2013-02")  # a batch delivered again, changed: its newest landing
    lake.compact("t", retention_hours=0)  # rows kept
    found = lake.landed("t")
    assert found["2013-02"]["esteira.fingerprint"] == fingerprint(changed) != fingerprint(feb)
    assert found["2013-01"]["version"] == 0
    with pytest.raises(LakeError, match="every row must have batch = '2013-03'"):
        lake.land("t", jan, "2013-03")

    lake.append("t", pd.DataFrame({"k": [5], "batch": ["2013-01"]}))  # another writer's rows
    assert lake.landed("t") == {}
    lake.land("t", jan, "2013-01")
    assert set(lake.landed("t")) == {"2013-01"}  # landed again; February stays unknown
    lake.replace("t", feb, where="batch = '2013-02'")
    assert lake.landed("t") == {}

    register = pd.DataFrame({"tail": ["N1", "N2"], "seats": [100, 200]})
    lake.land("planes", register)  # a table landed whole
    assert lake.landed("planes")[None]["esteira.fingerprint"] == fingerprint(register)
    lake.replace("planes", register)
    assert lake.landed("planes") == {}


def test_a_fingerprint_is_of_the_rows_not_their_order():
    df = pd.DataFrame({"k": [1, 2, 3], "s": ["a", None, "c"], "when": pd.to_datetime(
        ["2013-01-01", None, "2013-01-03"], utc=True)})  # fmt: skip
    same = df.iloc[::-1][["when", "s", "k"]].reset_index(drop=True)
    assert fingerprint(df) == fingerprint(same)
    assert fingerprint(df) != fingerprint(df.assign(k=[1, 2, 4]))
    assert fingerprint(df) != fingerprint(df.assign(k=df.k.astype(float)))  # types count
    assert fingerprint(df) != fingerprint(df.iloc[:2])
    listed = pd.DataFrame({"v": [[1, 2], [3]]})  # unhashable values: by their text
    assert fingerprint(listed) != fingerprint(pd.DataFrame({"v": [[1, 2], [4]]}))


def test_errors_name_the_table_and_what_exists(lake: Lake):
    lake.append("events", pd.DataFrame({"k": [1]}))
    with pytest.raises(LakeError, match=r"'nope' does not exist .* \(tables: events\)"):
        lake.read("nope")
    with pytest.raises(LakeError, match="has no version 7"):
        lake.read("events", version=7)
    with pytest.raises(LakeError, match="invalid table name"):
        lake.read("../etc")
    with pytest.raises(LakeError, match="Check that the batch has the table's columns"):
        lake.append("events", pd.DataFrame({"k": ["not a number"]}))
    assert lake.read("events")[0].k.tolist() == [1]  # the bad batch changed nothing


def test_schema_evolves_by_adding_columns_only(lake: Lake):
    """A batch may bring a new column (earlier rows read it as empty); one that lacks a
    column is refused, naming it; replacing the whole table takes the new schema."""
    lake.replace("t", pd.DataFrame({"k": [1], "batch": ["a"]}), where="batch = 'a'",
                 partition_by=["batch"])  # fmt: skip
    lake.replace("t", pd.DataFrame({"k": [2], "batch": ["b"], "new": ["x"]}), where="batch = 'b'")
    df = lake.read("t")[0].sort_values("k")
    assert df.new.isna().tolist() == [True, False]
    with pytest.raises(LakeError, match=r"the batch lacks its columns \['new'\]"):
        lake.append("t", pd.DataFrame({"k": [3], "batch": ["c"]}))
    assert len(lake.read("t")[0]) == 2  # nothing written
    version = lake.replace("t", pd.DataFrame({"other": [1.5], "batch": ["z"]}))
    assert list(lake.read("t")[0].columns) == ["other", "batch"]
    assert lake.open("t").metadata().partition_columns == ["batch"]
    assert sorted(lake.read("t", version=version - 1)[0].k) == [1, 2]  # history kept


def test_quarantine_transactions_and_compaction(lake: Lake):
    lake.quarantine("events", pd.DataFrame({"k": [7], "why": ["bad"]}), "2013-04", ["too few"])
    assert lake.quarantined("events", "2013-04").k.tolist() == [7]
    for i in range(4):
        lake.append("log", pd.DataFrame({"k": [i]}), transaction=("service-a", i))
    assert lake.transaction_version("log", "service-a") == 3
    assert lake.transaction_version("log", "service-b") is None
    done = lake.compact("log", retention_hours=0)
    assert done["files_removed"] == 4 and done["files_added"] == 1
    assert sorted(lake.read("log")[0].k) == [0, 1, 2, 3]


def test_writers_at_once_each_land_their_commit(lake: Lake):
    """Two writers appending at the same time: every append lands, each in a version of its
    own (on S3, a commit is a conditional PUT that fails for a version already written, and
    the writer retries at the next)."""
    from concurrent.futures import ThreadPoolExecutor

    lake.append("shared", pd.DataFrame({"writer": ["none"], "i": [-1]}))

    def write(writer: str) -> list[int]:
        return [lake.append("shared", pd.DataFrame({"writer": [writer], "i": [i]}))
                for i in range(8)]  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        versions = [v for vs in pool.map(write, ["a", "b"]) for v in vs]
    assert sorted(versions) == list(range(1, 17))
    df = lake.read("shared")[0]
    assert len(df) == 17 and sorted(df[df.writer == "a"].i) == list(range(8))


def test_an_object_store_that_does_not_answer_is_one_line(monkeypatch, s3_server):
    for name, value in s3_server.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    lake = Lake("s3://nowhere/lake")
    with pytest.raises(LakeError, match=r"cannot reach the lake s3://nowhere/lake: .*AWS_REGION"):
        lake.tables()


def test_the_reference_pipeline_runs_with_its_lake_on_s3(flight_project, s3_lake, monkeypatch):
    """ESTEIRA_LAKE=s3://...: ingestion, validation, the feature store, training and the
    registered version's lineage all go through the object store."""
    from esteira import load_project
    from esteira.pipelines.runner import run_pipeline

    monkeypatch.setenv("ESTEIRA_LAKE", s3_lake)
    project = load_project(flight_project)
    assert project.lake.remote and not (flight_project / ".esteira" / "lake").exists()
    result = run_pipeline(project, "train", {"end": "2013-01", "months": 1})
    assert result.status == "completed"
    assert {"raw_flights", "raw_weather", "flight_features"} <= set(project.lake.tables())
    assert len(project.lake.read("flight_features")[0]) == 26_483
    again = run_pipeline(load_project(flight_project), "train", {"end": "2013-01", "months": 1})
    assert again.status == "completed" and again.step_status["features"] == "cached"  # from S3
    assert not (flight_project / ".esteira" / "lake").exists()
