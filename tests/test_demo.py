"""`esteira demo --fast` as a new user runs it, in a home of its own: level 0 trains and
promotes the first champion; level 1 feeds three months through continuous training while
a live service answers a client, the faulty month is quarantined with the champion kept,
every request answered; level 2 takes the code to prod; the report reads cleanly in
Debian's Chromium; a rerun continues and finds everything done. One run (conftest's
`fast_demo`) for all of them, in this file so that one test worker makes it."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_dashboard import CHROMIUM, chromium
from test_demo_report import _fetches_nothing

from esteira.cicd.maturity import other_environments, score
from esteira.demo.report import REPORT_FILE
from esteira.project import open_project
from esteira.registry import CHAMPION, Registry

pytestmark = pytest.mark.integration


def test_the_fast_demo_walks_levels_0_and_1(fast_demo):
    first, done = fast_demo.first, fast_demo.first_state
    assert "Level 0" in first.stdout and "Level 1" in first.stdout
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
    assert "MLOps maturity of flight_delays" in first.stdout
    # Never retraining, measured on the months fed: the first month was scored by v1 live.
    assert sorted(done["never"]) == ["2013-04", "2013-06"]
    assert done["never"]["2013-04"] == pytest.approx(done["rows"][0]["metric"], abs=1e-12)
    assert str(fast_demo.home / "demo-report.html") in " ".join(first.stdout.split())


def test_level_2_takes_the_code_through_ci_and_cd_to_prod_in_the_demo_home(fast_demo):
    done, home = fast_demo.first_state, fast_demo.home
    steps = [d["step"] for d in done["delivered"]]
    assert steps == ["ci", "release", "deploy", "train in staging", "cd", "promote to prod"]
    assert "the ML test battery passed" in done["delivered"][0]["outcome"]

    def opened(env: str):
        return open_project(fast_demo.project, {"ESTEIRA_HOME": str(home), "ESTEIRA_ENV": env},
                            read_only=True)  # fmt: skip

    staging, prod = opened("staging"), opened("prod")
    assert staging.settings.home == home / "environments" / "staging"
    assert [d.release for d in staging.metadata.deployments("staging")]  # a release runs there
    staged = Registry(staging).by_alias("flight_delays", CHAMPION)
    passed = staging.metadata.cd_decisions("flight_delays", staged.version, True, kind="cd")
    assert passed and "load_test" in [c["name"] for c in passed[0].checks]  # one of its gates
    in_prod = Registry(prod).by_alias("flight_delays", CHAMPION)
    assert in_prod is not None  # copied from staging, with a person's approval
    history = prod.metadata.alias_history("flight_delays", CHAMPION)
    approvals = [c for c in history if c.action == "approve"]
    assert approvals and approvals[-1].to_version == in_prod.version
    assert not (fast_demo.project / ".esteira").exists()  # nothing outside the demo's home
    # Every item of level 2 is met but the CI workflow, which this copy of the project lacks.
    dev = opened("dev")
    missing = [i.name for i in score(dev, other_environments(dev)).items if not i.met]
    assert missing == ["CI runs the ML test battery"]


def test_a_rerun_continues_and_finds_everything_done(fast_demo):
    again, done = fast_demo.again, fast_demo.first_state
    rerun = json.loads((fast_demo.home / "demo.json").read_text())
    assert (rerun["rows"], rerun["first_champion"]) == (done["rows"], "1")
    assert rerun["never"] == done["never"]  # scored once
    assert "2013-04:" not in again.stdout  # nothing fed twice
    assert "demo-report.html" in again.stdout  # written again, with nothing left to feed
    assert "$ esteira ci" not in again.stdout and "serving the champion" not in again.stdout
    assert rerun["delivered"] == done["delivered"]  # level 2 done once


# the fast demo's report, in a browser ---------------------------------------------------


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium: tests/tools/ensure-chromium.sh")
def test_the_fast_demo_writes_a_report_that_reads_cleanly_in_chromium(fast_demo):
    home = fast_demo.home
    path = home / REPORT_FILE
    done = json.loads((home / "demo.json").read_text())
    html = path.read_text()
    _fetches_nothing(html)
    with sqlite3.connect(home / "esteira.db") as db:
        drifted = [json.loads(d) for (d,) in db.execute("SELECT drifted FROM monitoring")]
    columns = {c for d in drifted for c, found in d.items() if "test" in found}
    measured = [r for r in done["rows"] if not r["quarantined"]]
    assert len(drifted) == len(measured)
    swaps = len(done["versions_served"]) - 1
    problems: list[str] = []
    with chromium(problems) as page:
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                else problems.append(f"fetched: {r.url}"))  # fmt: skip
        page.goto(path.as_uri())
        assert [h.inner_text() for h in page.locator("h2").all()] == [
            "1. roc_auc per month", "2. Drift per feature over the year",
            "3. Triggers, gates and promotions", "4. Requests and latency during the swaps"]
        # 1: the live line and the never line (measured), the note that adds the third
        metric = page.locator("#metric + figure svg.line")
        legend = page.locator("#metric + figure .legend").inner_text()
        assert "the project's triggers (live)" in legend and "never retrained (v1)" in legend
        assert metric.locator("circle.point").count() == 2 * len(measured)
        assert metric.locator("g.mark.gap").count() == 1  # the faulty month
        assert "--policy monthly" in page.locator("main").inner_text()
        live = [r["metric"] for r in measured]
        never = [done["never"][r["batch"]] for r in measured]
        means = page.locator("table").nth(1).locator("tbody tr td.num").all_inner_texts()
        assert means[::2] == [f"{sum(live) / len(live):.4f}", f"{sum(never) / len(never):.4f}"]
        # 2: a cell per feature and month, the quarantined month blank
        cells = page.locator("svg.heatmap rect.cell")
        assert cells.count() == len(columns) * len(done["rows"])
        assert page.locator("svg.heatmap rect.cell[fill='#ffffff']").count() == len(columns)
        # 3: each month's row, the promotions
        timeline = page.locator("#timeline + table").inner_text()
        for row in done["rows"]:
            assert row["batch"] in timeline
        assert timeline.count("→ v") == swaps  # each promotion, as the alias moved
        # 4: the totals as demo.json has them, the first run charted with its swaps marked
        cards = page.locator("#traffic + .cards").inner_text()
        assert f"{done['requests']:,}" in cards and "failed\n0" in cards
        assert " → ".join(f"v{v}" for v in done["versions_served"]) in cards
        assert f"{done['latency_p99_ms']:.1f} ms" in cards
        rate = page.locator("svg.line[aria-label^='Requests per second']")
        assert rate.count() >= 1
        assert rate.first.locator("g.mark.event").count() == swaps
        assert rate.first.locator("g.mark.alarm").count() == 0
    assert problems == []
