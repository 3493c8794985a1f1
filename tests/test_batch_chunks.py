"""`esteira predict --chunk-rows N` writes one commit of N rows per chunk, whatever the files
of the input table."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from esteira import load_project
from esteira.errors import EsteiraError
from esteira.pipelines.runner import run_pipeline
from esteira.serving.batch import predict_table, rechunk

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from esteira import pipeline, step


@step
def train(ctx):
    x = pd.DataFrame({"x": np.arange(50, dtype=float)})
    model = LinearRegression().fit(x, 2 * x["x"] + 1)
    return ctx.log_model(model, x.head(2), register_as="line").version


flow = pipeline("flow", [train])
"""


def test_rechunk_gives_tables_of_the_size_asked_for_in_order():
    batches = [pa.record_batch({"i": list(range(start, start + n))})
               for start, n in ((0, 3), (3, 7), (10, 1), (11, 4))]  # fmt: skip
    chunks = list(rechunk(batches, 5))
    assert [c.num_rows for c in chunks] == [5, 5, 5]
    assert [i for c in chunks for i in c.column("i").to_pylist()] == list(range(15))
    assert [c.num_rows for c in rechunk(batches, 4)] == [4, 4, 4, 3]
    assert list(rechunk([], 5)) == []


def test_one_commit_per_chunk_of_n_rows(write_project):
    project = load_project(write_project(PIPELINE))
    version = run_pipeline(project, "flow").output("train")
    for part in range(14):  # 14 small files, as a table that grew by small appends has
        rows = pd.DataFrame({"id": range(part * 100, (part + 1) * 100)})
        project.lake.append("to_score", rows.assign(x=rows["id"].astype(float)))
    assert len(project.lake.open("to_score").file_uris()) == 14

    result = predict_table(project, "line", "to_score", "scored", version=version,
                           chunk_rows=500, keep=["id"])  # fmt: skip

    assert result.rows == 1400
    commits = project.lake.history("scored")
    assert len(commits) == 3 and result.output_version == 2
    sizes = [len(project.lake.read("scored", version=v)[0]) for v in range(3)]
    assert sizes == [500, 1000, 1400]  # 500, 500 and the last 400
    scored, _ = project.lake.read("scored")
    assert sorted(scored["id"]) == list(range(1400))
    assert scored["prediction"].to_numpy() == pytest.approx(2 * scored["id"].to_numpy() + 1)

    with pytest.raises(EsteiraError, match="chunk_rows must be at least 1"):
        predict_table(project, "line", "to_score", "scored", version=version, chunk_rows=0)
