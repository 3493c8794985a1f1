"""The demo's levels, in a home of its own (a rerun continues where the last one stopped:
level 0 is a cache hit, the batches already fed are kept in `demo.json`).

Level 0 runs the project's training pipeline by hand, which registers and promotes the
first champion. Level 1 starts `esteira serve` on the champion and a bounded client of it,
then feeds the batches one by one through continuous training with the project's own
triggers (`BatchFeed`): each lands and is validated, is monitored with the champion, and
when a trigger fires a challenger is trained, gated and, if it wins, promoted, which the
live service swaps in while it answers. One batch may be delivered faulty on purpose
(`ESTEIRA_DEMO_FAULTY_BATCH`, which the project's source honours): it is quarantined, the
champion stays, and the source delivers it fixed to the training windows after it.
Level 2 (`delivery.py`) then takes the code through CI and CD to prod."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.ct.feed import BatchFeed, BatchRow
from esteira.demo.delivery import Delivered, deliver
from esteira.errors import EsteiraError

if TYPE_CHECKING:
    from esteira.demo.traffic import Session, Traffic
    from esteira.project import Project

FAULTY_BATCH = "ESTEIRA_DEMO_FAULTY_BATCH"
"""A batch the project's source delivers broken when asked, as an upstream outage would."""
SWAP_WAIT_S = 60.0  # a busy machine loads a model in tens of seconds


@dataclass
class DemoRun:
    """What the demo did: level 0's run and champion, each batch of level 1, the steps of
    level 2."""

    level0_run: str = ""
    first_champion: str = ""
    rows: list[BatchRow] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    versions_served: list[str] = field(default_factory=list)
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    never: dict[str, float | None] = field(default_factory=dict)
    """The first champion's metric on each batch fed (never retraining), for the report."""
    delivered: list[Delivered] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        staged.replace(path)

    @classmethod
    def load(cls, path: Path) -> DemoRun:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [BatchRow(**row) for row in data.pop("rows")]
        delivered = [Delivered(**step) for step in data.pop("delivered", [])]
        return cls(**data, rows=rows, delivered=delivered)


def run_demo(
    root: Path,
    home: Path,
    batches: list[str],
    faulty: str | None = None,
    say: Callable[[str], None] = print,
) -> DemoRun:
    """Levels 0, 1 and 2 of the project at `root`, in `home`."""
    from esteira.ct.triggers import from_config
    from esteira.demo.baseline import score_first_champion
    from esteira.project import load_project

    project = load_project(root, environ={"ESTEIRA_HOME": str(home)})
    state_path = project.settings.home / "demo.json"
    done = DemoRun.load(state_path)
    ct = project.settings.ct
    if not ct.model:
        raise EsteiraError("the demo needs [ct] model (and the CT settings) in esteira.toml")

    say("[bold]Level 0[/]: the training pipeline, run by hand, tracked in MLflow")
    run_id, champion = _level0(project)  # a rerun: every step a cache hit
    if not done.level0_run:
        done.level0_run, done.first_champion = run_id, champion
        done.save(state_path)
        say(f"  run {run_id[:12]}: champion v{champion}")
    else:
        say(f"  run {run_id[:12]}, from the cache: the first champion was "
            f"v{done.first_champion}, the champion is v{champion}")  # fmt: skip

    say("[bold]Level 1[/]: continuous training, batch by batch, with a live service")
    fed = {row.batch for row in done.rows}
    left = [batch for batch in batches if batch not in fed]
    if left:
        feed = BatchFeed(project, from_config(ct.triggers, ct.metric), batches[0])
        _level1(root, project, feed, left, faulty, champion, done, state_path, say)
    else:
        say(f"  the {len(batches)} batches were fed in a run before")
    if score_first_champion(project, done, say):
        done.save(state_path)

    say("[bold]Level 2[/]: the pipeline's code through CI and CD to prod")
    try:
        deliver(root, project.settings.homes, batches[-1], done.delivered, say)
    finally:
        done.save(state_path)
    return done


def _level1(
    root: Path,
    project: Project,
    feed: BatchFeed,
    batches: list[str],
    faulty: str | None,
    champion: str,
    done: DemoRun,
    state_path: Path,
    say: Callable[[str], None],
) -> None:
    """`batches` fed one by one while a live service of the champion answers a client."""
    from esteira.cicd.service import following
    from esteira.demo.traffic import TRAFFIC_FILE, Traffic, keep, sessions

    model = project.settings.ct.model
    with following(root, project.settings, model, "champion", 1.0, 300) as service:
        traffic = Traffic(service, _requests(project, model, champion)).start()
        say(f"  serving the champion on http://127.0.0.1:{service.port}, a client sending "
            f"a request every {traffic.pause_s * 1000:.0f} ms")  # fmt: skip
        try:
            for batch in batches:
                row = _fed(feed, batch, faulty)
                done.rows.append(row)
                done.save(state_path)
                say("  " + _told(row))
                if row.champion_after and row.champion_after != row.champion:
                    _wait_for(traffic, row.champion_after, say)
        finally:
            traffic.stop()
            keep(traffic, project.settings.home / TRAFFIC_FILE)
            _count(done, traffic, sessions(project.settings.home / TRAFFIC_FILE))
            done.save(state_path)


def _fed(feed: BatchFeed, batch: str, faulty: str | None) -> BatchRow:
    """`batch` fed; delivered broken if it is the faulty one. The source re-delivers it
    fixed afterwards, as an upstream system would once told: later training windows that
    take it get the good rows."""
    if batch != faulty:
        return feed.feed(batch)
    os.environ[FAULTY_BATCH] = batch  # read by the project's source, in this process
    try:
        return feed.feed(batch)
    finally:
        del os.environ[FAULTY_BATCH]


def _level0(project: Project) -> tuple[str, str]:
    from esteira.pipelines.runner import run_pipeline
    from esteira.registry import CHAMPION, Registry

    result = run_pipeline(project, project.settings.ct.pipeline, {})
    champion = Registry(project).by_alias(project.settings.ct.model, CHAMPION)
    if champion is None:
        raise EsteiraError(
            f"level 0 trained no champion (run {result.run_id[:12]}): its gates refused the "
            f"model; see esteira show {result.run_id[:12]}"
        )
    return result.run_id, champion.version


def _requests(project: Project, model: str, version: str) -> list[Any]:
    """Bodies of single-row requests: the rows of the model's input example."""
    from esteira.models import input_example

    example = input_example(project, model, version)
    rows = json.loads(example.to_json(orient="records", date_format="iso"))
    return [{"records": [row]} for row in rows]


def _told(row: BatchRow) -> str:
    if row.quarantined:
        kept = f"champion stays v{row.champion}"
        return f"{row.batch}: [red]quarantined[/] ({row.quarantined}); {kept}"
    seen = "" if row.metric is None else f" {row.metric:.4f} with v{row.champion}"
    drift = "" if row.drift_share is None else f", drift {row.drift_share:.0%}"
    if not row.retrained:
        return f"{row.batch}:{seen}{drift}; no trigger fired"
    if row.failed:
        outcome = f"[red]the retraining failed[/] ({row.failed})"
    elif row.champion_after != row.champion:
        outcome = f"[green]promoted v{row.champion_after}[/]"
    else:
        outcome = f"the gates kept v{row.champion}"
    return f"{row.batch}:{seen}{drift}; fired: {', '.join(row.fired)} → {outcome}"


def _wait_for(traffic: Traffic, version: str, say: Callable[[str], None]) -> None:
    """Until the live service answers with `version` (it looks at the registry every
    second), so each batch is fed with the new champion serving."""
    deadline = time.monotonic() + SWAP_WAIT_S
    while time.monotonic() < deadline:
        if traffic.answers and traffic.answers[-1].version == version:
            say(f"    the service swapped to v{version} while answering")
            return
        time.sleep(0.2)
    say(f"    [yellow]the service did not answer with v{version} within {SWAP_WAIT_S:g} s[/]")


def _count(done: DemoRun, traffic: Traffic, kept: list[Session]) -> None:
    """This run's requests added; the latency of every run's answers that were `kept`."""
    import numpy as np

    done.requests += len(traffic.answers)
    done.failed += len(traffic.failed)
    done.versions_served = list(dict.fromkeys([*done.versions_served, *traffic.versions()]))
    latencies = [a.latency_ms for run in kept for a in run.answers if a.status == 200]
    if latencies:
        done.latency_p50_ms = round(float(np.percentile(latencies, 50)), 2)
        done.latency_p99_ms = round(float(np.percentile(latencies, 99)), 2)
