from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esteira.artifacts import TEMP_PREFIX, ArtifactStore
from esteira.errors import ArtifactError


def test_round_trips_and_content_addressing(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    df = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    ref = store.save(df)
    assert ref.kind == "parquet" and ref.exists() and ref.size > 0
    pd.testing.assert_frame_equal(store.load(ref), df)
    assert store.save(df.copy()) == ref  # same content, same object, stored once

    indexed = df.set_index("b")
    pd.testing.assert_frame_equal(store.load(store.save(indexed)), indexed)

    assert store.load(store.save({"auc": np.float64(0.8), "n": np.int64(3)})) == {
        "auc": 0.8,
        "n": 3,
    }
    arr = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(store.load(store.save(arr)), arr)
    assert len(list(store.objects.iterdir())) == 4


def test_unsupported_values_get_a_clear_error(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="return a pandas DataFrame"):
        store.save(object())
    with pytest.raises(ArtifactError, match="not JSON-able"):
        store.save({"f": object()})
    assert not any(store.objects.iterdir())  # nothing half-written left behind


def test_missing_artifact_says_what_to_do(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    ref = store.save({"a": 1})
    ref.path.unlink()
    with pytest.raises(ArtifactError, match="--no-cache"):
        store.load(ref)


WRITER = """
import sys
import numpy as np, pandas as pd
from esteira.artifacts import ArtifactStore
df = pd.DataFrame(np.random.default_rng(0).random((4_000_000, 8)))
print("writing", flush=True)
while True:  # write until killed
    ArtifactStore(sys.argv[1]).save(df.sample(frac=1.0))
"""


def test_process_killed_mid_write_leaves_no_partial_artifact(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        objects = tmp_path / "objects"
        deadline = time.monotonic() + 60
        while not (objects.exists() and any(objects.glob(f"{TEMP_PREFIX}*"))):
            assert time.monotonic() < deadline, "the writer never started a write"
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = ArtifactStore(tmp_path)
    for path in store.objects.iterdir():
        if path.name.startswith(TEMP_PREFIX):
            continue
        pd.read_parquet(path)  # every published artifact is whole
    assert any(store.objects.glob(f"{TEMP_PREFIX}*"))
    live = store.objects / f"{TEMP_PREFIX}{os.getpid()}-being-written"  # a writer still alive
    live.write_bytes(b"half")
    assert store.prune_temporary() >= 1  # the dead writer's, however recent
    assert list(store.objects.glob(f"{TEMP_PREFIX}*")) == [live]
