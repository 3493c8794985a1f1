"""What the demo's report shows, read from the demo's home (demo.json, the traffic kept,
its metadata store), from the monthly replay's home when there is one, and from the
level 2 environments' homes when they exist. Every store is opened read-only, through
the dashboard's `Environment`: a store not made yet stays unmade and is reported absent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esteira.ct.feed import BatchRow
from esteira.errors import NotFound

if TYPE_CHECKING:
    from esteira.dashboard.data import Environment
    from esteira.dashboard.observed import Monitoring
    from esteira.demo.run import DemoRun
    from esteira.demo.traffic import Session
    from esteira.metadata import AliasChange, GateDecision

LEVEL2 = ("staging", "prod")
"""The environments level 2 walks, each with its stores in `<home>/environments/<name>`."""
MOST_RECORDS = 1000
MOST_BUCKETS, LEAST_BUCKET_S = 60, 2
"""The traffic of one run is charted in at most this many buckets of whole seconds, each
of a few seconds at least (a p99 of fewer requests is their slowest)."""


@dataclass(frozen=True)
class Lines:
    """The metric per batch under three policies; None: not measured that batch."""

    metric: str
    batches: list[str]
    chosen: list[float | None]
    never: list[float | None]
    monthly: list[float | None] | None
    """Retraining on every batch, from the replay's home; None without one."""
    retrains: tuple[int, int, int | None]
    """Retrainings: chosen, never, monthly."""
    quarantined: list[str]
    replay_home: Path
    replay_note: str = ""
    """Why the monthly line is absent though the replay's home exists."""

    def means(self) -> tuple[list[str], list[float | None]]:
        """The batches every drawn line measured, and each line's mean over them (chosen,
        never, monthly): one span, so the means compare."""
        drawn = [self.chosen, self.never, *([self.monthly] if self.monthly else [])]
        common = [i for i in range(len(self.batches)) if all(_known(v[i]) for v in drawn)]
        means = [_mean([v[i] for i in common]) for v in drawn]
        return [self.batches[i] for i in common], means + [None] * (3 - len(means))


@dataclass(frozen=True)
class Month:
    """One batch of level 1 with the decisions behind it."""

    row: BatchRow
    gate: GateDecision | None
    """The gates' decision on the challenger its retraining trained."""
    promoted: AliasChange | None
    """The champion's move that retraining made."""


@dataclass(frozen=True)
class Event:
    """Something level 2 did in an environment."""

    at: datetime
    environment: str
    what: str
    subject: str
    detail: str
    kind: str = "none"
    """How it went, as a badge: ok, bad, warn or none."""


@dataclass(frozen=True)
class Level0:
    run_id: str
    champion: str
    trained: str
    """The run's batch parameter, e.g. end=2013-03."""
    gate: GateDecision | None


@dataclass(frozen=True)
class RunTraffic:
    """One run's traffic in buckets of `bucket_s` seconds, with its swaps and failures."""

    started: datetime
    seconds: float
    bucket_s: int
    labels: list[str]
    rate: list[float | None]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    swaps: list[tuple[float, str]]
    """(seconds from the start, version) where a new version first answered."""
    failures: list[tuple[float, int, str]]
    """(seconds from the start, failed answers, the first one's error) per bucket."""
    requests: int
    failed: int
    versions: list[str]
    overall_ms: tuple[float, float] | None


@dataclass
class Facts:
    project: str
    root: str
    """The project folder as given to esteira demo, for the commands the report names."""
    home: Path
    model: str
    done: DemoRun
    level0: Level0
    lines: Lines
    monitoring: Monitoring | None
    months: list[Month]
    level2: list[Event]
    level2_found: list[str]
    traffic: list[RunTraffic]
    """Each run's traffic kept in the demo's home, oldest first."""
    written: datetime = field(default_factory=lambda: datetime.now(UTC))


def gather(root: Path, shown_root: str, home: Path, done: DemoRun) -> Facts:
    """Everything the report shows of the demo in `home` of the project at `root`."""
    from esteira.dashboard.data import Environment
    from esteira.dashboard.observed import monitoring
    from esteira.demo.traffic import TRAFFIC_FILE, sessions

    demo = Environment(root, "dev", {"ESTEIRA_HOME": str(home)})
    model = demo.settings.ct.model or ""
    found = monitoring(demo, model, MOST_RECORDS) if demo.metadata is not None else None
    runs = [traffic_of(s) for s in sessions(home / TRAFFIC_FILE)]
    level2 = {name: _level2_env(root, home, name) for name in LEVEL2}
    events = sorted((e for name, env in level2.items() if env is not None
                     for e in level2_events(env, name, model)), key=lambda e: e.at)  # fmt: skip
    return Facts(
        project=demo.settings.name,
        root=shown_root,
        home=home,
        model=model,
        done=done,
        level0=_level0(demo, done),
        lines=lines(root, demo, done, found.metric if found else ""),
        monitoring=found,
        months=months(demo, done),
        level2=events,
        level2_found=[name for name, env in level2.items() if env is not None],
        traffic=[r for r in runs if r.requests],
    )


# the metric under three policies -------------------------------------------------------


def lines(root: Path, demo: Environment, done: DemoRun, metric: str) -> Lines:
    """The live run's metric per batch, the first champion's (never retrained), and the
    monthly replay's where its home holds these batches; `metric`: the name monitoring
    recorded it under ("": the project's `[ct] metric`)."""
    from esteira.ct.replay import policy_home

    rows = done.rows
    batches = [r.batch for r in rows]
    quarantined = [r.batch for r in rows if r.quarantined]
    metric = metric or demo.settings.ct.metric or "metric"
    home = policy_home(root, "monthly")
    monthly, retrains, note = _replayed(root, home, demo.settings.ct.model or "", metric,
                                        batches)  # fmt: skip

    def kept(values: list[float | None]) -> list[float | None]:
        return [None if b in quarantined else v for b, v in zip(batches, values, strict=True)]

    return Lines(
        metric=metric,
        batches=batches,
        chosen=kept([r.metric for r in rows]),
        never=kept([done.never.get(b) for b in batches]),
        monthly=kept(monthly) if monthly is not None else None,
        retrains=(sum(r.retrained for r in rows), 0, retrains),
        quarantined=quarantined,
        replay_home=home,
        replay_note=note,
    )


def _replayed(root: Path, home: Path, model: str, metric: str, batches: list[str]
              ) -> tuple[list[float | None] | None, int | None, str]:  # fmt: skip
    """The monthly replay's `metric` per batch (from its monitoring records) and its
    retrainings over `batches`, or why they are absent though its home exists."""
    from esteira.dashboard.data import Environment

    if not home.is_dir() or not batches:
        return None, None, ""
    store = Environment(root, "dev", {"ESTEIRA_HOME": str(home)}).metadata
    if store is None:
        return None, None, f"the replay's home {home} has no metadata store yet"
    # oldest first: a batch monitored twice keeps its newest figure
    by_batch = {r.batch: r.metrics.get(metric)
                for r in reversed(store.monitoring_history(model, MOST_RECORDS))}  # fmt: skip
    if not any(b in by_batch for b in batches):
        return None, None, f"the replay in {home} covers none of {batches[0]}..{batches[-1]}"
    retrains = sum(1 for run in store.ct_runs(model, MOST_RECORDS) if run.batch in batches)
    return [by_batch.get(b) for b in batches], retrains, ""


# what happened to each batch, and level 2 ----------------------------------------------


def _level0(demo: Environment, done: DemoRun) -> Level0:
    store = demo.metadata
    trained, gate = "", None
    if store is not None and done.level0_run:
        param = demo.settings.ct.batch_param
        try:
            params = store.run(done.level0_run).params
        except NotFound:  # a store started again since
            params = {}
        trained = f"{param}={params[param]}" if param in params else ""
        found = store.gate_decisions(pipeline_run_id=done.level0_run, limit=1)
        gate = found[0] if found else None
    return Level0(done.level0_run, done.first_champion, trained, gate)


def months(demo: Environment, done: DemoRun) -> list[Month]:
    """Each batch fed, with the gates' decision and the promotion its retraining made."""
    from esteira.registry import CHAMPION

    model = demo.settings.ct.model or ""
    store = demo.metadata
    if store is None:
        return [Month(row, None, None) for row in done.rows]
    runs = {run.batch: run for run in reversed(store.ct_runs(model, MOST_RECORDS))}
    gates = demo.gates(model, MOST_RECORDS)
    decided = {d.pipeline_run_id: d for d in reversed(gates.decisions)}
    moved = {c.pipeline_run_id: c for c in gates.history.get(CHAMPION, [])}
    found = []
    for row in done.rows:
        run = runs.get(row.batch) if row.retrained else None
        key = run.pipeline_run_id if run is not None else None
        found.append(Month(row, decided.get(key), moved.get(key)))
    return found


def gate_figure(decision: GateDecision) -> str:
    """The figure a gate decision turned on: the comparison with the champion when it
    passed, the checks that failed when it did not."""
    checks: list[dict[str, Any]] = decision.checks.get("checks", [])
    if not decision.passed:
        failed = [f"{c['name']}: {c['reason']}" for c in checks if not c.get("passed")]
        return "; ".join(failed) or decision.summary
    versus = next((c for c in checks if c.get("name") == "versus_champion"), None)
    if versus is not None and versus.get("figures"):
        return str(versus["reason"])
    metric = decision.checks.get("metric", "")
    value = decision.checks.get("metrics", {}).get(metric)
    return f"{metric} {value:.4f}" if metric and value is not None else decision.summary


def _level2_env(root: Path, home: Path, name: str) -> Environment | None:
    from esteira.dashboard.data import Environment

    if not (home / "environments" / name).is_dir():
        return None
    env = Environment(root, name, {"ESTEIRA_HOME": str(home)})  # its home: environments/<name>
    return env if env.metadata is not None else None


def level2_events(env: Environment, name: str, model: str) -> list[Event]:
    """The deployments, CD decisions and champion moves of environment `name`."""
    from esteira.registry import CHAMPION

    store = env.metadata
    if store is None:
        return []
    events = [Event(d.at, name, d.action, f"release {d.release}", f"{d.actor}: {d.reason}",
                    "warn" if d.action == "rollback" else "ok")
              for d in store.deployments(name)]  # fmt: skip
    events += [Event(c.at, name, f"{c.kind} {'passed' if c.passed else 'refused'}",
                     f"v{c.version}", _gates_told(c.checks), "ok" if c.passed else "bad")
               for c in store.cd_decisions(model)]  # fmt: skip
    for change in store.alias_history(model, CHAMPION):
        what = "promotion approved" if change.action == "approve" else f"champion ({change.action})"
        moved = f"v{change.from_version} → v{change.to_version}" if change.from_version \
            else f"v{change.to_version}"  # fmt: skip
        why = "the CD gates passed" if change.action == "cd" else change.reason  # told above
        events.append(Event(change.at, name, what, moved, f"{change.actor}: {why}", "ok"))
    return events


def _gates_told(checks: list[dict[str, Any]]) -> str:
    """Each CD gate with its verdict, and the load test's figures (the whole evidence is
    on the dashboard's gates page)."""
    told = ", ".join(f"{c['name']} {'✓' if c['passed'] else '✗'}" for c in checks)
    load = next((c["reason"] for c in checks if c["name"] == "load_test"), "")
    return f"{told}; load test: {load}" if load else told


# the traffic --------------------------------------------------------------------------


def traffic_of(session: Session) -> RunTraffic:
    """One run's answers in buckets of whole seconds (at most MOST_BUCKETS): requests per
    second, latency p50 and p99 of the answered, where new versions first answered and
    where requests failed."""
    import numpy as np

    answers = session.answers
    seconds = max((a.at for a in answers), default=0.0)
    bucket_s = max(LEAST_BUCKET_S, math.ceil(seconds / MOST_BUCKETS))
    count = max(1, math.ceil(seconds / bucket_s))
    slots: list[list[float]] = [[] for _ in range(count)]
    asked = [0] * count
    failures: dict[int, list[str]] = {}
    swaps, seen = [], None
    for a in answers:
        i = min(int(a.at // bucket_s), count - 1)
        asked[i] += 1
        if a.status == 200:
            slots[i].append(a.latency_ms)
        else:
            failures.setdefault(i, []).append(a.error or f"status {a.status}")
        if a.version and a.version != seen:
            if seen is not None:
                swaps.append((a.at, a.version))
            seen = a.version
    widths = [float(bucket_s)] * count
    widths[-1] = seconds - (count - 1) * bucket_s  # the last bucket ends with the traffic

    def centile(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    answered = [a.latency_ms for a in answers if a.status == 200]
    return RunTraffic(
        started=datetime.fromtimestamp(session.started, UTC),
        seconds=seconds,
        bucket_s=bucket_s,
        labels=[f"{i * bucket_s // 60}:{i * bucket_s % 60:02d}" for i in range(count)],
        # a last bucket under half as wide counts too few requests to say a rate
        rate=[n / w if w >= bucket_s / 2 else None for n, w in zip(asked, widths, strict=True)],
        p50_ms=[centile(s, 50) for s in slots],
        p99_ms=[centile(s, 99) for s in slots],
        swaps=swaps,
        failures=[(i * bucket_s, len(e), e[0]) for i, e in sorted(failures.items())],
        requests=len(answers),
        failed=sum(len(e) for e in failures.values()),
        versions=list(dict.fromkeys(a.version for a in answers if a.version)),
        overall_ms=(float(np.percentile(answered, 50)), float(np.percentile(answered, 99)))
        if answered else None,
    )  # fmt: skip


def _known(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
