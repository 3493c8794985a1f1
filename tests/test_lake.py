from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from esteira.errors import LakeError
from esteira.lake import Lake


def test_append_read_versions_and_history(tmp_path: Path):
    lake = Lake(tmp_path)
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


def test_replace_where_is_idempotent(tmp_path: Path):
    lake = Lake(tmp_path)
    batch = pd.DataFrame({"k": [1, 2], "batch": ["2013-01"] * 2})
    lake.replace("t", batch, where="batch = '2013-01'", partition_by=["batch"])
    lake.replace("t", pd.DataFrame({"k": [9], "batch": ["2013-02"]}), where="batch = '2013-02'")
    lake.replace("t", batch, where="batch = '2013-01'")  # the same batch again
    df, version = lake.read("t")
    assert version == 2
    assert sorted(df.k) == [1, 2, 9]


def test_errors_name_the_table_and_what_exists(tmp_path: Path):
    lake = Lake(tmp_path)
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


def test_schema_evolves_by_adding_columns_only(tmp_path: Path):
    """A batch may bring a new column (earlier rows read it as empty); one that lacks a
    column is refused, naming it; replacing the whole table takes the new schema."""
    lake = Lake(tmp_path)
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
