"""`esteira maturity`: the scorecard follows the evidence in the stores, not the settings."""

from __future__ import annotations

import json

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
