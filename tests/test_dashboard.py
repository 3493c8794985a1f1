"""esteira dashboard: the SVG and HTML builders on small data, every page of a home that
never ran, and the reference project's trained home served by the real command and read
in Debian's Chromium."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from test_cli import ESTEIRA, _env
from test_serving import free_port

from esteira.dashboard.app import VIEWS, create_app
from esteira.dashboard.charts import Cell, Mark, bar_chart, heat, heatmap, line_chart
from esteira.dashboard.layout import table
from esteira.errors import NotFound
from esteira.metadata import CTRun, MetadataStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")


# the builders -------------------------------------------------------------------------


def test_the_heatmap_has_a_cell_per_row_and_column_and_escapes_names():
    cells = {("temp", "2013-02"): Cell(2.5, True, "wasserstein 0.25"),
             ("temp", "2013-03"): Cell(0.4, False, "wasserstein 0.04"),
             ("<b>", "2013-02"): Cell(0.1, False, "js 0.01")}  # fmt: skip
    svg = str(heatmap(["temp", "<b>"], ["2013-02", "2013-03"], cells, "drift"))
    assert len(re.findall(r'<rect class="cell', svg)) == 4
    assert svg.count('class="cell alarm"') == 1
    assert "not measured" in svg  # the pair without a record
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_heat_deepens_with_the_level_and_turns_red_past_the_limit():
    def red_share(colour: str) -> float:
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        return r / max(r + g + b, 1)

    calm, near = heat(Cell(0.0, False, "")), heat(Cell(0.9, False, ""))
    past, far = heat(Cell(1.2, True, "")), heat(Cell(50.0, True, ""))
    assert calm != near and past != far
    assert red_share(past) > red_share(near) > red_share(calm)
    assert heat(Cell(50.0, True, "")) == heat(Cell(3.0, True, ""))  # clamped at 3x the limit


def test_the_line_chart_breaks_at_gaps_and_draws_the_limit():
    svg = str(line_chart(["a", "b", "c", "d", "e"], {"auc": [0.7, 0.71, None, 0.69, 0.68],
                                                    "p99": [1, 2, 3, 4, 5]},
                         "metric", limit=0.65))  # fmt: skip
    assert svg.count("<polyline") == 3  # auc in two pieces, p99 in one
    assert svg.count("<circle") == 9 and "class=limit" in svg
    assert "auc · e: 0.68" in svg and "<div class=legend>" in svg
    for lonely in (line_chart(["a"], {"x": [1.0]}, "one"), line_chart([], {}, "none")):
        assert "<svg" in lonely and "nan" not in lonely


def test_the_line_chart_marks_moments_and_can_start_at_zero():
    svg = str(line_chart(["a", "b", "c"], {"rate": [14.0, 15.0, 16.0]}, "rate", from_zero=True,
                         marks=[Mark(0.5, "v2 <new>"), Mark(1, "boom", "alarm"),
                                Mark(2, "quarantined", "gap")]))  # fmt: skip
    assert svg.count('<g class="mark event">') == svg.count('<g class="mark alarm">') == 1
    assert svg.count('<g class="mark gap">') == 1
    assert "v2 &lt;new&gt;" in svg and "<new>" not in svg
    assert ">0</text>" in svg  # the axis starts at zero
    event = re.search(r'<g class="mark event"><line x1="([\d.]+)"', svg)
    points = [float(x) for x in re.findall(r'<circle class=point cx="([\d.]+)"', svg)]
    assert event and float(event.group(1)) == pytest.approx((points[0] + points[1]) / 2, abs=0.1)


def test_the_heatmap_makes_room_for_long_column_labels():
    short = str(heatmap(["temp"], ["2013-04"], {}, "drift"))
    long = str(heatmap(["temp"], ["2013-04", "2013-05 quarantined"], {}, "drift"))
    size = re.compile(r'<svg class="chart heatmap"[^>]* width="(\d+)" height="(\d+)"')
    (w1, h1), (w2, h2) = size.search(short).groups(), size.search(long).groups()
    assert int(h2) > int(h1)  # the longest label fits above the grid
    assert int(w2) - int(w1) > 56  # a column, and the last label's lean past the grid


def test_the_bar_chart_draws_one_bar_per_value_from_zero():
    svg = str(bar_chart([("01:00", 3), ("02:00", 0), ("03:00", 12)], "requests"))
    heights = [float(h) for h in re.findall(r'<rect class=bar [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 3 and heights[1] == 0 and heights[2] == max(heights)
    assert abs(heights[0] / heights[2] - 3 / 12) < 0.01


def test_tables_escape_text_and_keep_markup():
    from markupsafe import Markup

    shown = str(table(["a", "b"], [["<script>x</script>", Markup("<b>ok</b>")]], numeric=[1]))
    assert "&lt;script&gt;" in shown and "<b>ok</b>" in shown and "class=num" in shown


def test_a_read_only_metadata_store_reads_and_refuses_writes(tmp_path):
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'esteira.db'}"
    with pytest.raises(NotFound, match="no metadata store"):
        MetadataStore(url, read_only=True)
    assert not (tmp_path / "esteira.db").exists()  # looking created nothing
    MetadataStore(url).add(CTRun(model="m", trigger="on_demand", reason="r", status="completed"))
    looking = MetadataStore(url, read_only=True)
    assert [r.reason for r in looking.ct_runs("m")] == ["r"]
    with pytest.raises(OperationalError, match="readonly"):
        looking.add(CTRun(model="m", trigger="on_demand", reason="again", status="completed"))


def test_a_read_only_store_on_postgresql_refuses_writes(postgres_server):
    from sqlalchemy.exc import InternalError

    url = postgres_server.new_database()
    MetadataStore(url).add(CTRun(model="m", trigger="on_demand", reason="r", status="completed"))
    looking = MetadataStore(url, read_only=True)
    assert [r.reason for r in looking.ct_runs("m")] == ["r"]
    with pytest.raises(InternalError, match="read-only transaction"):
        looking.add(CTRun(model="m", trigger="on_demand", reason="again", status="completed"))


# a home that never ran ----------------------------------------------------------------


class Running:
    """An ASGI app served by uvicorn on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_every_page_of_a_home_that_never_ran_says_what_to_run_and_creates_nothing(
    write_project,
):
    root = write_project("", toml="[ct]\nmodel = 'toy'\npipeline = 'flow'\n")
    with Running(create_app(root, "dev", "http://127.0.0.1:5000")) as running:
        shown = {path: httpx.get(running.url + path, timeout=30) for path in VIEWS}
        staging = httpx.get(f"{running.url}/?env=staging", timeout=30)
        unknown = httpx.get(f"{running.url}/?env=qa", timeout=30)
        no_run = httpx.get(f"{running.url}/runs/abc", timeout=30)
    assert all(r.status_code == 200 for r in shown.values()), {
        p: r.status_code for p, r in shown.items()
    }
    assert "No runs yet in dev" in shown["/"].text and "esteira run flow -p" in shown["/"].text
    assert "esteira ct start" in shown["/ct"].text
    assert "esteira monitor" in shown["/monitoring"].text
    assert "esteira serve" in shown["/serving"].text
    assert staging.status_code == 200 and "--env staging" in staging.text
    assert unknown.status_code == 404 and "no environment &#39;qa&#39;" in unknown.text
    assert no_run.status_code == 404 and "no runs yet in dev" in no_run.text
    assert not (root / ".esteira").exists()  # no store was created by looking


# the reference project's trained home ---------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[dict]:
    """The flights trained on January, a CT run on February, both months monitored, a
    quarantined batch, an alert, a prediction log; served by `esteira dashboard`."""
    from conftest import EXAMPLE

    from esteira import load_project
    from esteira.ct.controller import Controller
    from esteira.ct.triggers import Fire
    from esteira.monitoring.job import run_monitor
    from esteira.pipelines.runner import run_pipeline

    root = tmp_path_factory.mktemp("dashboard") / "flight_delays"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    toml = root / "esteira.toml"  # a month a run keeps it short
    toml.write_text(toml.read_text().replace('end = "2013-03"', 'end = "2013-01"')
                    .replace("months = 12", "months = 1"))  # fmt: skip
    project = load_project(root)
    run_pipeline(project, "train")
    Controller(project, log=lambda m: None).run([Fire("new_data", "February landed")], "2013-02")
    for batch in ("2013-01", "2013-02"):
        run_monitor(project, "flight_delays", None, "flight_features", batch, None, None,
                    root / f"report-{batch}.html")  # fmt: skip
    _log_predictions(project)
    rows, _ = project.lake.read("raw_flights", filters=[("batch", "=", "2013-02")])
    project.lake.quarantine("raw_flights", rows.head(7), "2013-02", ["dep_time: 7 nulls"])
    project.metadata.add_alert("data_validation", "raw_flights/2013-02", "7 rows held back")
    port = free_port()
    command = [*ESTEIRA, "dashboard", "-p", str(root), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            httpx.get(url + "/runs", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the dashboard did not come up"
            time.sleep(0.1)
    try:
        yield {"root": root, "project": project, "url": url}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _log_predictions(project) -> None:
    """Thirty answers of the champion in the prediction log, through the log itself."""
    from esteira.serving.predlog import Logged, PredictionLog

    table = "predictions_flight_delays"
    log = PredictionLog(project.lake, table, "flight_delays",
                        project.settings.home / "predlog" / table, log=lambda m: None)  # fmt: skip
    log.start()
    start = datetime.now(UTC) - timedelta(minutes=30)
    row = {"scheduled_at": "2013-02-28T18:30:00-05:00", "carrier": "UA", "origin": "EWR"}
    for i in range(30):
        log.add(Logged(f"r{i}", start + timedelta(minutes=i), "2", 5.0 + i, [row], [0.2]))
    log.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
def test_the_dashboard_shows_the_loop_of_the_trained_home_and_writes_nothing(home):
    from esteira.registry import CHAMPION, Registry

    project, url = home["project"], home["url"]
    stores = [project.settings.home / "esteira.db", project.settings.home / "mlflow.db"]
    before = [_digest(p) for p in stores]
    champion = Registry(project).by_alias("flight_delays", CHAMPION)
    auc = Registry(project).version("flight_delays", champion.version).metrics["roc_auc"]
    pages = {path: httpx.get(url + path, timeout=60) for path in VIEWS}
    failed = {p: r.text[-300:] for p, r in pages.items() if r.status_code != 200}
    assert not failed

    overview = pages["/"].text
    assert f"version {champion.version}" in overview and f"roc_auc {auc:.4g}" in overview
    assert f"http://127.0.0.1:5000/#/models/flight_delays/versions/{champion.version}" in overview
    experiment = project.tracker.client.get_run(champion.run_id).info.experiment_id
    assert f"/#/experiments/{experiment}/runs/{champion.run_id}" in overview
    assert "Maturity: level" in overview
    ct_run = project.metadata.ct_runs("flight_delays")[0]
    assert "February landed" in pages["/ct"].text and ct_run.batch in pages["/ct"].text
    assert f"{ct_run.champion_before} → {ct_run.champion_after}" in pages["/ct"].text
    decisions = project.metadata.gate_decisions("flight_delays")
    assert pages["/gates"].text.count("<tr>") >= len(decisions) + 1
    assert "History of champion" in pages["/gates"].text

    records = project.metadata.monitoring_history("flight_delays")
    columns = {c for r in records for c, d in r.drifted.items() if "test" in d}
    monitoring = pages["/monitoring"].text
    assert monitoring.count('<rect class="cell') == len(columns) * len(records)
    assert "7 rows held back" in monitoring and "dep_time: 7 nulls" in monitoring
    serving = pages["/serving"].text
    assert re.search(r"requests<b>30</b>", serving) and "predictions_flight_delays" in serving

    latest = project.metadata.runs(limit=1)[0]
    run_page = httpx.get(f"{url}/runs/{latest.id[:8]}", timeout=30)
    assert run_page.status_code == 200
    assert all(s.step in run_page.text for s in project.metadata.run(latest.id).steps)
    assert [_digest(p) for p in stores] == before  # read, never written


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium: tests/tools/ensure-chromium.sh")
def test_every_page_reads_cleanly_in_chromium(home):
    url, project = home["url"], home["project"]
    records = project.metadata.monitoring_history("flight_delays")
    columns = {c for r in records for c, d in r.drifted.items() if "test" in d}
    charts = {"/": 0, "/runs": 1, "/ct": 0, "/gates": 0, "/monitoring": 3, "/serving": 2}
    problems: list[str] = []
    with chromium(problems) as page:
        for path, expected in charts.items():
            answer = page.goto(url + path)
            assert answer is not None and answer.status == 200, path
            assert page.locator("svg.chart").count() == expected, path
            assert page.locator("nav a.on").count() == 1
        page.goto(url + "/monitoring")
        assert page.locator("svg.heatmap rect.cell").count() == len(columns) * len(records)
        assert page.locator("svg.line polyline.series").count() >= 1
        page.goto(url + "/runs")
        page.locator("table a[href^='/runs/']").first.click()
        assert page.locator("h1").inner_text().startswith("Run ")
        assert page.locator("svg.bar rect.bar").count() >= 5  # one per step
        page.goto(url + "/?env=staging")
        assert "No runs yet in staging" in page.locator("main").inner_text()
    assert problems == []


@contextmanager
def chromium(problems: list[str]) -> Iterator[Page]:
    """A page in Debian's Chromium that notes its console errors, script errors and failed
    requests in `problems`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        try:
            yield page
        finally:
            browser.close()
