"""`esteira maturity`: the scorecard follows the evidence in the stores, not the settings."""

from __future__ import annotations

import json

import pytest
from test_cli import esteira
from test_steps import PIPELINE

from esteira import load_project
from esteira.cicd.maturity import other_environments, score
from esteira.pipelines.runner import run_pipeline


def test_the_scorecard_follows_the_evidence(write_project):
    root = write_project(PIPELINE, toml="[ct]\nmodel = 'toy'\n[ct.triggers]\nnew_data = true\n")
    project = load_project(root)
    before = score(project, other_environments(project))
    assert before.level == -1 and not any(i.met for i in before.items)
    assert not other_environments(project)  # looking at staging and prod creates no stores
    assert not (root / ".esteira" / "environments").exists()

    run_pipeline(project, "flow")
    after = {i.name: i for i in score(project, {}).items}
    assert after["runs tracked"].met and after["runs tracked"].evidence.startswith("1 pipeline")
    assert after["model gates"].met and after["models registered with lineage"].met
    assert not after["continuous training"].met  # configured is not evidence: none fired
    assert "esteira ct start" in after["continuous training"].evidence

    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ml.yml").write_text("steps:\n  - run: esteira ci\n")
    shown = esteira("maturity", "-p", str(root), "--json")
    assert shown.returncode == 0, shown.stderr
    card = json.loads(shown.stdout)
    items = {i["name"]: i for i in card["items"]}
    assert items["CI runs the ML test battery"]["met"] and card["level"] == -1
    assert not items["data validated"]["met"]  # this pipeline validates no batch
    table = esteira("maturity", "-p", str(root))
    assert "[ct] and [ct.triggers]" in table.stdout and "not yet level 0" in table.stdout


@pytest.mark.integration
def test_the_reference_project_reaches_level_2_and_a_fresh_init_project_scores_lower(
    flight_project, tmp_path
):
    """The three levels' evidence on the flights: a run, a CT run, a served and monitored
    champion, CI that runs the battery, and a release through the CD gates to an approved
    prod; a project fresh from `esteira init` has none of it yet."""
    import httpx
    from test_serving import Server

    from esteira.scaffold import create

    root = str(flight_project)
    toml = flight_project / "esteira.toml"  # a month a run keeps it short
    text = toml.read_text().replace('end = "2013-03"', 'end = "2013-01"')
    toml.write_text(text.replace("months = 12", "months = 1"))
    assert esteira("run", "train", "-p", root).returncode == 0
    fired = esteira("ct", "trigger", "--batch", "2013-02", "--reason", "February", "-p", root)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    server = Server(flight_project, "--model", "flight_delays")
    try:
        server.wait_up()
        server.wait_ready()
        departure = {"scheduled_at": "2013-02-28T18:30:00-05:00", "carrier": "UA", "origin": "EWR",
                     "dest": "ORD", "tailnum": "N14228", "distance": 719}  # fmt: skip
        for _ in range(20):
            assert httpx.post(f"{server.url}/predict", json={"records": [departure]}).is_success
    finally:
        server.stop()
    assert esteira("monitor", "-p", root).returncode == 0
    (flight_project / ".github" / "workflows").mkdir(parents=True)
    (flight_project / ".github" / "workflows" / "ml.yml").write_text("- run: esteira ci\n")
    for command in (("release",), ("deploy", "--env", "staging"), ("cd", "--env", "staging"),
                    ("promote", "--env", "prod", "--approve", "--reason", "ok")):  # fmt: skip
        done = esteira(*command, "-p", root)
        assert done.returncode == 0, f"{command}: {done.stdout} {done.stderr}"

    shown = esteira("maturity", "-p", root, "--json")
    card = json.loads(shown.stdout)
    assert card["level"] == 2, [i for i in card["items"] if not i["met"]]
    fresh = create("fresh", tmp_path)
    assert json.loads(esteira("maturity", "-p", str(fresh), "--json").stdout)["level"] == -1
