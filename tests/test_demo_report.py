"""The demo's report: its builders on a small home made by hand (every section, gaps,
escaping, nothing fetched) and the traffic kept across runs. The fast demo's own report is
read in Debian's Chromium in tests/test_demo.py, beside the run it reads."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from esteira.ct.feed import BatchRow
from esteira.demo.report import REPORT_FILE, write_report
from esteira.demo.report_data import traffic_of
from esteira.demo.run import DemoRun
from esteira.demo.traffic import TRAFFIC_FILE, Answer, Session, Traffic, keep, sessions
from esteira.metadata import (
    AliasChange,
    CDDecision,
    CTRun,
    Deployment,
    GateDecision,
    MetadataStore,
    MonitoringRecord,
    PipelineRun,
)

SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'
"""An inline SVG's namespace: a name, never fetched."""
TOML = """
[project]
name = "tiny"
[ct]
model = "m"
pipeline = "train"
batch_param = "end"
metric = "roc_auc"
label = "y"
"""
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _store(home: Path) -> MetadataStore:
    home.mkdir(parents=True, exist_ok=True)
    return MetadataStore(f"sqlite:///{home / 'esteira.db'}")


def _record(batch: str, version: str, auc: float, temp: float) -> MonitoringRecord:
    drifted = {
        "temp": {"test": "wasserstein", "value": temp, "threshold": 0.1, "drifted": temp > 0.1},
        "<b>wind</b>": {"test": "psi", "value": 0.05, "threshold": 0.2, "drifted": False},
    }
    return MonitoringRecord(model="m", version=version, batch=batch, rows=100, drift_share=0.5,
                            drifted=drifted, metrics={"task": "binary", "roc_auc": auc},
                            source="replay")  # fmt: skip


def _gate(run: str, version: str, passed: bool) -> GateDecision:
    checks = [{"name": "versus_champion", "passed": True,
               "reason": "roc_auc 0.7100 vs champion v1 0.6900",
               "figures": {"metric": "roc_auc", "challenger": 0.71, "champion": 0.69}},
              {"name": "segments", "passed": passed, "reason": "LGA falls behind by 0.03",
               "figures": {}}]  # fmt: skip
    return GateDecision(model="m", version=version, champion_version="1", passed=passed,
                        summary="...", checks={"metric": "roc_auc", "checks": checks},
                        pipeline_run_id=run)  # fmt: skip


def _rows() -> list[BatchRow]:
    return [
        BatchRow("2013-04", "1", 0.69, 0.4, True, "new_data", "2", "", ["new_data"]),
        BatchRow("2013-05", "2", None, None, quarantined="dep_delay: <script>lost</script>"),
        BatchRow("2013-06", "2", 0.72, 0.6, True, "drift", "2", "", ["drift", "new_data"]),
        BatchRow("2013-07", "2", 0.70, 0.3, True, "new_data", "2", "", ["new_data"],
                 failed="StepFailed: out of memory"),
    ]  # fmt: skip


@pytest.fixture
def small_demo(tmp_path: Path) -> tuple[Path, Path, DemoRun]:
    """A demo home as four months would leave it: April promoted v2, May quarantined,
    June's challenger refused by the gates, July's retraining failed."""
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "esteira.toml").write_text(TOML)
    home = tmp_path / "demo home"
    store = _store(home)
    store.add(PipelineRun(id="r0", project="tiny", pipeline="train", status="completed",
                          executor="me@here", code_version="c", params={"end": "2013-03"}))
    store.add(_gate("r0", "1", True), _gate("r1", "2", True), _gate("r2", "3", False))
    store.add(*(_record(b, v, auc, temp) for b, v, auc, temp in
                (("2013-04", "1", 0.69, 0.05), ("2013-06", "2", 0.72, 0.3),
                 ("2013-07", "2", 0.70, 0.2))))  # fmt: skip
    for batch, run, after, status in (("2013-04", "r1", "2", "completed"),
                                      ("2013-06", "r2", "2", "completed"),
                                      ("2013-07", "r3", "2", "failed")):  # fmt: skip
        store.add(CTRun(at=T0, model="m", trigger="new_data", reason="r", batch=batch,
                        status=status, pipeline_run_id=run, champion_before="2",
                        champion_after=after))  # fmt: skip
    store.add(AliasChange(at=T0, model="m", alias="champion", action="promote", from_version="1",
                          to_version="2", actor="me", reason="gates", pipeline_run_id="r1"))
    done = DemoRun("r0", "1", _rows(), requests=6, failed=1, versions_served=["1", "2"],
                   latency_p50_ms=20.0, latency_p99_ms=90.0,
                   never={"2013-04": 0.69, "2013-06": 0.66, "2013-07": 0.64})  # fmt: skip
    done.save(home / "demo.json")
    answers = [Answer(0.5, 200, "1", 20.0), Answer(10.2, 200, "1", 21.0),
               Answer(20.1, 0, "", 5.0, "ConnectionResetError: <reset>"),
               Answer(30.3, 200, "2", 90.0), Answer(40.0, 200, "2", 19.0),
               Answer(45.0, 200, "2", 20.0)]  # fmt: skip
    (home / TRAFFIC_FILE).write_text("".join(
        json.dumps({"started": T0.timestamp(), **a.__dict__}) + "\n" for a in answers))
    return root, home, done


def _replay(root: Path, batches: dict[str, float]) -> None:
    store = _store(root / ".esteira" / "replay" / "monthly")
    store.add(PipelineRun(id="b", project="tiny", pipeline="train", status="completed",
                          executor="me", code_version="c"))  # fmt: skip
    for n, (batch, auc) in enumerate(batches.items()):
        store.add(_record(batch, str(n + 2), auc, 0.1))
        store.add(CTRun(model="m", trigger="new_data", reason="r", batch=batch, status="completed"))
    store.add(CTRun(model="m", trigger="bootstrap", reason="r", batch="2013-03",
                    status="completed"))  # fmt: skip


def _level2(home: Path) -> None:
    staging = _store(home / "environments" / "staging")
    staging.add(PipelineRun(id="s", project="tiny", pipeline="train", status="completed",
                            executor="me", code_version="c"))  # fmt: skip
    staging.add(Deployment(at=T0, environment="staging", release="rel-7", action="deploy",
                           actor="ci", reason="tests passed"))  # fmt: skip
    staging.add(CDDecision(at=T0 + timedelta(minutes=5), environment="staging", model="m",
                           version="2", passed=True, summary="every gate passed", actor="ci",
                           checks=[{"name": "smoke_test", "passed": True, "reason": "answered"},
                                   {"name": "load_test", "passed": True,
                                    "reason": "p99 41 ms within 100"}]))  # fmt: skip
    prod = _store(home / "environments" / "prod")
    prod.add(PipelineRun(id="p", project="tiny", pipeline="train", status="completed",
                         executor="me", code_version="c"))  # fmt: skip
    prod.add(AliasChange(at=T0 + timedelta(hours=1), model="m", alias="champion",
                         action="approve", from_version=None, to_version="1", actor="ana",
                         reason="signed off <ok>"))  # fmt: skip


def _sections(html: str) -> list[str]:
    return re.findall(r"<h2 id=(\w+)>", html)


def _fetches_nothing(html: str) -> None:
    text = html.replace(SVG_NAMESPACE, "")
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"\bsrc\s*=", text) and "<script" not in text
    assert not re.search(r"url\(", text)  # no stylesheet fetch either
    assert re.findall(r"<link [^>]*>", text) == ['<link rel=icon href="data:,">']


# the builders --------------------------------------------------------------------------


def test_the_report_has_every_section_with_its_figures_gaps_and_escaping(small_demo):
    root, home, done = small_demo
    _replay(root, {"2013-04": 0.70, "2013-05": 0.71, "2013-06": 0.73, "2013-07": 0.74})
    _level2(home)
    path = write_report(root, home, done)
    assert path == home / REPORT_FILE
    html = path.read_text()
    assert _sections(html) == ["metric", "drift", "timeline", "traffic"]
    _fetches_nothing(html)
    # 1. three lines, the quarantined month a marked gap in each, and the means table
    assert html.count("<polyline class=series") >= 3
    for name in ("the project&#39;s triggers (live)", "never retrained (v1)",
                 "retrained every month (replay)"):  # fmt: skip
        assert f"</i>{name}</span>" in html
    assert html.count('<g class="mark gap">') == 1 and "2013-05: -" not in html
    means = re.findall(r"<td class=num>(0\.\d{4})</td><td class=num>(\d+)</td>", html)
    # over April, June and July, the months every line measured (May quarantined)
    assert means == [("0.7033", "3"), ("0.6633", "0"), ("0.7233", "4")]
    assert "esteira ct replay" not in html
    assert "the chosen policy is the monthly reference" in html  # every usable month retrained
    # 2. one cell per column and month, May a blank column
    cells = re.findall(r'<rect class="cell[^"]*"[^>]*><title>([^<]*)</title>', html)
    assert len(cells) == 2 * 4  # temp and wind, by April to July
    assert sum("not measured" in c for c in cells) == 2  # May, for each column
    assert "2013-05 quarantined" in html
    # 3. the gates' key figures, the promotion, quarantine and failure, then level 2
    assert "roc_auc 0.7100 vs champion v1 0.6900" in html
    assert "segments: LGA falls behind by 0.03" in html  # June's refusal, the check that failed
    assert "v1 → v2</span> at 2026-01-05 09:00" in html
    assert "dep_delay: &lt;script&gt;lost&lt;/script&gt;" in html
    assert "StepFailed: out of memory" in html
    for told in ("release rel-7", "cd passed", "smoke_test ✓, load_test ✓; load test: p99 41 ms",
                 "promotion approved",
                 "ana: signed off &lt;ok&gt;"):  # fmt: skip
        assert told in html
    # 4. the traffic: totals from demo.json, a chart with the swap and the failure marked
    assert "<b>6</b>" in html and "v1 → v2" in html and "90.0 ms" in html
    assert html.count('<g class="mark event">') == 2  # both traffic charts
    assert html.count('<g class="mark alarm">') == 2
    assert "ConnectionResetError: &lt;reset&gt;" in html
    # the header: each level's line, links beside the report
    assert "run r0 (end=2013-03)" in html and "v1 became the first champion" in html
    assert "staging: " in html and "prod: promotion approved v1" in html
    assert '<a href="demo.json">' in html and f'<a href="{TRAFFIC_FILE}">' in html


def test_without_a_replay_the_report_says_the_command_that_adds_it(small_demo):
    root, home, done = small_demo
    done.rows[2].retrained = False  # June kept the champion without retraining
    html = write_report(root, home, done).read_text()
    assert ("esteira ct replay -p " + str(root) + " --from 2013-04 --to 2013-07 --policy monthly"
            in html)  # fmt: skip
    assert "retrained every month" not in html
    assert "the chosen policy is the monthly reference" not in html
    assert "No level 2 event" in html and "not run in this home yet" in html
    _fetches_nothing(html)


def test_a_home_with_nothing_yet_gives_a_report_that_says_so(tmp_path):
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "esteira.toml").write_text(TOML)
    home = tmp_path / "home"
    home.mkdir()
    html = write_report(root, home, DemoRun()).read_text()
    assert _sections(html) == ["metric", "drift", "timeline", "traffic"]
    assert "No batch fed yet" in html and "No answer kept" in html
    assert not (home / "esteira.db").exists()  # looking made no store
    _fetches_nothing(html)


def test_the_traffic_is_bucketed_with_its_swaps_and_failures():
    answers = [Answer(i * 0.5, 200, "1" if i < 300 else "2", 10.0 + i % 7) for i in range(400)]
    answers[350] = Answer(175.0, 503, "", 2.0, "overloaded")
    run = traffic_of(Session(T0.timestamp(), answers))
    assert run.bucket_s == 4 and len(run.labels) == 50  # 199.5 s in at most 60 buckets
    assert run.labels[:2] == ["0:00", "0:04"] and run.rate[0] == 2.0
    assert run.swaps == [(150.0, "2")]
    assert run.failures == [(172, 1, "overloaded")]
    assert (run.requests, run.failed, run.versions) == (400, 1, ["1", "2"])
    assert run.overall_ms is not None and 10 <= run.overall_ms[0] <= 16


def test_the_traffic_of_every_run_is_kept_and_a_torn_line_skipped(tmp_path):
    path = tmp_path / TRAFFIC_FILE
    for started, versions in ((100.0, "12"), (200.0, "2")):
        traffic = Traffic(service=None, bodies=[])  # type: ignore[arg-type]
        traffic.started = started
        traffic.answers = [Answer(i / 10, 200, v, 12.3456) for i, v in enumerate(versions)]
        keep(traffic, path)
    keep(Traffic(service=None, bodies=[]), path)  # type: ignore[arg-type]  # nothing answered
    with path.open("a") as torn:
        torn.write('{"started": 300.0, "at": 0.1, "sta')
    kept = sessions(path)
    assert [s.started for s in kept] == [100.0, 200.0]
    assert [[a.version for a in s.answers] for s in kept] == [["1", "2"], ["2"]]
    assert kept[0].answers[1] == Answer(0.1, 200, "2", 12.346)
