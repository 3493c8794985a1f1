"""Mistakes a user makes at the command line get one clear line naming what is wrong and
what to do, not a traceback, and change nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from test_cli import esteira
from test_steps import PIPELINE

from esteira import load_project
from esteira.pipelines.runner import run_pipeline
from esteira.registry import CHAMPION, Registry


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors") / "proj"
    root.mkdir()
    (root / "pipelines.py").write_text(PIPELINE)
    (root / "esteira.toml").write_text('[ct]\nmodel = "toy"\nbatch_table = "rows"\n')
    project = load_project(root)
    run_pipeline(project, "flow")
    rows = pd.DataFrame({"x1": [0.1, 0.2], "x2": [0.3, 0.4], "batch": ["2024-01", "2024-02"]})
    project.lake.append("rows", rows)
    project.lake.append("other", pd.DataFrame({"y": [1.0]}))
    return root


def refused(root, *args: str) -> str:
    done = esteira(*args, "-p", str(root))
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_an_unknown_version_is_named_with_the_versions_there_are(root):
    told = refused(root, "predict", "--input", "rows", "--output", "scored", "--version", "999")
    assert "model 'toy' has no version 999 (versions: 1)" in told
    assert not load_project(root).lake.exists("scored")


def test_an_invalid_alias_is_refused_before_anything_moves(root):
    told = refused(root, "promote", "toy", "1", "--alias", "bad alias!", "--reason", "x")
    assert "alias 'bad alias!' is not valid" in told
    assert "not valid" in refused(root, "promote", "toy", "1", "--alias", "v2", "--reason", "x")
    assert Registry(load_project(root)).by_alias("toy", CHAMPION).version == "1"


def test_monitoring_a_batch_or_table_that_cannot_be_monitored_says_why(root):
    told = refused(root, "monitor", "--input", "rows", "--batch", "2099-01")
    assert "has no rows of batch 2099-01 (batches: 2024-01, 2024-02)" in told
    told = refused(root, "monitor", "--input", "other")
    assert "lacks inputs of toy version 1: x1, x2" in told


def test_a_negative_keep_last_is_refused(root):
    told = refused(root, "cache", "prune", "--keep-last", "-1")
    assert "--keep-last" in told


def test_a_failed_ct_run_says_why(tmp_path):
    root = tmp_path / "ct"
    root.mkdir()
    (root / "pipelines.py").write_text(PIPELINE)
    (root / "esteira.toml").write_text(
        '[ct]\nmodel = "toy"\npipeline = "flow"\nbatch_param = "seed"\nbatch_period = "integer"\n'
    )
    done = esteira("ct", "trigger", "--batch", "-5", "--reason", "a bad seed", "-p", str(root))
    assert done.returncode == 1
    assert "CT run of toy failed" in done.stdout and "why: step 'data' failed" in done.stdout
