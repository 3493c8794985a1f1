"""`esteira demo --fast` as a new user runs it, in a home of its own: level 0 trains and
promotes the first champion; level 1 feeds three months through continuous training while
a live service answers a client, the faulty month is quarantined with the champion kept,
every request answered; a rerun continues and finds everything done."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import EXAMPLE
from test_cli import _env

pytestmark = pytest.mark.integration


def test_the_fast_demo_walks_levels_0_and_1_and_a_rerun_continues(tmp_path):
    project = tmp_path / "flight_delays"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    home = tmp_path / "demo home"
    command = [sys.executable, "-m", "esteira.cli", "demo", "-p", str(project), "--home",
               str(home), "--fast"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Level 0" in first.stdout and "Level 1" in first.stdout

    done = json.loads((home / "demo.json").read_text())
    assert done["first_champion"] == "1"
    assert [r["batch"] for r in done["rows"]] == ["2013-04", "2013-05", "2013-06"]
    faulty = done["rows"][1]
    assert faulty["quarantined"].startswith("dep_delay")  # what was wrong with it
    assert faulty["champion_after"] is None and not faulty["retrained"]
    assert done["rows"][2]["champion"] == done["rows"][0]["champion_after"]  # kept through it
    # Re-delivered fixed, the month trains the windows after it: no retraining fails on it.
    assert not [r["failed"] for r in done["rows"] if r["failed"]]
    assert done["requests"] > 50 and done["failed"] == 0
    promoted = [r["champion_after"] for r in done["rows"] if r["champion_after"] != r["champion"]
                and r["champion_after"]]  # fmt: skip
    assert done["versions_served"] == ["1", *promoted]  # each new champion answered live
    assert f"{done['requests']:,} requests, 0 failed" in first.stdout
    assert "MLOps maturity of flight_delays" in first.stdout and "\nlevel 1\n" in first.stdout

    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((home / "demo.json").read_text())
    assert (rerun["rows"], rerun["first_champion"]) == (done["rows"], "1")
    assert "2013-04:" not in again.stdout  # nothing fed twice
