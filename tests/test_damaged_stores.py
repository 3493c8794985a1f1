"""A store that breaks on disk fails with one line naming the file and what to do: never a
library's traceback, and never taken for a new, empty store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_cli import esteira
from test_steps import PIPELINE

from esteira import load_project
from esteira.errors import LakeError
from esteira.lake import Lake
from esteira.pipelines.runner import run_pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A project with a champion: runs, cache, alias history and registry on disk."""
    root = tmp_path_factory.mktemp("damaged") / "proj"
    root.mkdir()
    (root / "pipelines.py").write_text(PIPELINE)
    run_pipeline(load_project(root), "flow")
    return root


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(trained, root)
    return root


def one_line_error(*args: str) -> str:
    done = esteira(*args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error:"), done.stderr
    return " ".join(done.stderr.split())  # one message, however the terminal wrapped it


def damage(path: Path, how: str) -> None:
    import sqlite3

    with sqlite3.connect(path) as con:  # everything in the main file, none in a WAL
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"not a database at all " * 100)
    else:  # truncated: SQLite's header survives, the second half does not
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("emptied", "is empty (0 bytes)"),
        ("garbage", "is not an SQLite database"),
        ("truncated", "is damaged"),
    ],
)
def test_a_damaged_metadata_store_is_named_and_never_started_afresh(copy, how, said):
    store = copy / ".esteira" / "esteira.db"
    damage(store, how)
    line = one_line_error("runs", "-p", str(copy))
    assert f"the metadata store {store} {said}" in line
    assert "move it aside to start a new one" in line
    if how == "emptied":
        assert store.stat().st_size == 0  # nothing was written into it


@pytest.mark.parametrize(("how", "said"), [("emptied", "is empty"), ("garbage", "is not an")])
def test_a_damaged_mlflow_store_is_named(copy, how, said):
    store = copy / ".esteira" / "mlflow.db"
    damage(store, how)
    line = one_line_error("models", "-p", str(copy))
    assert f"MLflow's store {store} {said}" in line


def test_a_damaged_delta_log_is_named_with_its_newest_commit(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.append("events", pd.DataFrame({"a": [1, 2]}))
    lake.append("events", pd.DataFrame({"a": [3]}))
    newest = sorted((tmp_path / "lake" / "events" / "_delta_log").glob("*.json"))[-1]
    newest.write_text(newest.read_text()[:40])
    with pytest.raises(LakeError) as damaged:
        lake.read("events")
    assert f"its newest commit is {newest}" in str(damaged.value)
    assert "transaction log" in str(damaged.value) and "\n" not in str(damaged.value)


def test_a_cached_run_whose_registry_is_gone_says_so_and_no_cache_rebuilds_it(copy):
    from esteira.registry import Registry

    (copy / ".esteira" / "mlflow.db").unlink()  # the registry, gone
    line = one_line_error("run", "flow", "-p", str(copy))
    assert "model 'toy' version 1, which step 'register' registered, is no longer" in line
    assert "rerun with --no-cache" in line
    rebuilt = esteira("run", "flow", "-p", str(copy), "--no-cache")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert Registry(load_project(copy)).by_alias("toy").version == "1"
