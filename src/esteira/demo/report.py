"""`<home>/demo-report.html`: what `esteira demo` did, in one file that opens offline (its
style inline, its charts inline SVG, no script, nothing fetched): the metric per month
under the chosen policy against never retraining and retraining every month, drift per
feature, the triggers, gates and promotions of each month (and level 2's events), and the
live service's requests and latency while champions were swapped. Drawn with the
dashboard's charts and page pieces; read by `report_data`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from esteira.dashboard.charts import Mark, line_chart
from esteira.dashboard.layout import badge, cards, document, empty, facts_table, table, when

if TYPE_CHECKING:
    from esteira.ct.feed import BatchRow
    from esteira.dashboard.observed import Monitoring
    from esteira.demo.report_data import Facts, Lines, Month, RunTraffic
    from esteira.demo.run import DemoRun

REPORT_FILE = "demo-report.html"
CHARTED_S = 30
"""A run's traffic is charted when it swapped a version, failed a request, or lasted this."""


def write_report(root: Path, home: Path, done: DemoRun) -> Path:
    """Write the report of the demo in `home` of the project at `root` (as the user gave
    it: the commands it names use it); its path."""
    from esteira.demo.report_data import gather

    html = render(gather(Path(root).resolve(), str(root), home, done))
    path = home / REPORT_FILE
    staged = path.with_suffix(".tmp")
    staged.write_text(html, encoding="utf-8")
    staged.replace(path)
    return path


def render(facts: Facts) -> str:
    header = Markup("<div class=top><b class=brand>esteira</b><span>demo of {}</span></div>"
                    ).format(facts.project)  # fmt: skip
    body = Markup("").join([
        _summary(facts),
        _policies(facts),
        _drift(facts),
        _timeline(facts),
        _traffic(facts),
        Markup("<p class=sub>One file, nothing fetched: it reads the same offline. Hover over "
               "a point, a cell or a mark for its figure.</p>"),
    ])  # fmt: skip
    return document(f"demo of {facts.project} · esteira", header, body)


# 0. what was done ----------------------------------------------------------------------


def _summary(facts: Facts) -> Markup:
    done, rows = facts.done, facts.done.rows
    champion = _champion_at_end(done)
    promoted = sum(1 for m in facts.months if m.promoted is not None)
    served = " → ".join(f"v{v}" for v in done.versions_served) or "-"
    parts = [
        Markup("<h1>The demo of {}</h1>").format(facts.project),
        Markup("<p class=sub>Written {} UTC by <code>esteira demo</code>, from its home {}.</p>"
               ).format(when(facts.written), facts.home),
        cards([
            ("champion at the end", f"v{champion}" if champion else "-", ""),
            ("batches fed", len(rows), ""),
            ("retrainings", sum(r.retrained for r in rows), ""),
            ("promotions", promoted, ""),
            ("quarantined", sum(1 for r in rows if r.quarantined), ""),
            ("requests (failed)", f"{done.requests:,} ({done.failed:,})", ""),
        ]),
        facts_table([
            ("level 0", _level0(facts)),
            ("level 1", _level1(facts, promoted, served)),
            ("level 2", _level2(facts)),
            ("files", _files(facts)),
            ("look closer", Markup("<code>ESTEIRA_HOME={} esteira dashboard -p {}</code>")
             .format(facts.home, facts.root)),
        ]),
    ]  # fmt: skip
    return Markup("").join(parts)


def _champion_at_end(done: DemoRun) -> str:
    for row in reversed(done.rows):
        if row.champion_after or row.champion:
            return row.champion_after or row.champion or ""
    return done.first_champion


def _level0(facts: Facts) -> str:
    level0 = facts.level0
    if not level0.run_id:
        return "not run yet"
    from esteira.demo.report_data import gate_figure

    trained = f" ({level0.trained})" if level0.trained else ""
    gates = f": the gates passed ({gate_figure(level0.gate)})" if level0.gate else ""
    return (f"the training pipeline run by hand, run {level0.run_id[:12]}{trained}, tracked in "
            f"MLflow{gates}; v{level0.champion} became the first champion")  # fmt: skip


def _level1(facts: Facts, promoted: int, served: str) -> str:
    rows = facts.done.rows
    if not rows:
        return "no batch fed yet"
    failed = sum(1 for r in rows if r.failed)
    quarantined = sum(1 for r in rows if r.quarantined)
    return (f"{len(rows)} batches fed ({rows[0].batch} to {rows[-1].batch}) through continuous "
            f"training with the project's triggers: {sum(r.retrained for r in rows)} "
            f"retrainings, {promoted} promotions, {quarantined} quarantined, {failed} failed; a "
            f"live service answered {facts.done.requests:,} requests ({facts.done.failed:,} "
            f"failed) with versions {served}")  # fmt: skip


def _level2(facts: Facts) -> str:
    if not facts.level2_found:
        return ("not run in this home yet (esteira ci, release, deploy --env staging, "
                "cd --env staging, promote --env prod --approve)")  # fmt: skip
    told = []
    for name in facts.level2_found:
        events = [e for e in facts.level2 if e.environment == name]
        kinds = dict.fromkeys(f"{e.what} {e.subject}" for e in events)
        told.append(f"{name}: " + ("; ".join(kinds) if kinds else "no event yet"))
    return " · ".join(told)


def _files(facts: Facts) -> Markup:
    """Links to the files beside the report (relative, so the folder can move)."""
    from esteira.demo.traffic import TRAFFIC_FILE

    found = [(name, name) for name in ("demo.json", TRAFFIC_FILE) if (facts.home / name).exists()]
    if facts.lines.replay_home.is_dir():
        found.append((os.path.relpath(facts.lines.replay_home, facts.home), "the monthly replay"))
    links = [Markup('<a href="{}">{}</a>').format(href, text) for href, text in found]
    return Markup(" · ").join(links) if links else Markup("-")


# 1. the metric per month ---------------------------------------------------------------


def _policies(facts: Facts) -> Markup:
    lines = facts.lines
    parts = [Markup("<h2 id=metric>1. {} per month</h2>").format(lines.metric)]
    if not lines.batches:
        return parts[0] + empty("No batch fed yet")
    never = f"never retrained (v{facts.done.first_champion})"
    series = {"the project's triggers (live)": lines.chosen, never: lines.never}
    if lines.monthly is not None:
        series["retrained every month (replay)"] = lines.monthly
    gaps = [Mark(i, "quarantined", "gap") for i, b in enumerate(lines.batches)
            if b in lines.quarantined]  # fmt: skip
    parts.append(line_chart(lines.batches, series, f"{lines.metric} of the champion of the "
                            "time on each month, before it trained on it", marks=gaps))
    parts.append(_means(lines, list(series)))
    if lines.monthly is None:
        first, last = lines.batches[0], lines.batches[-1]
        why = f" ({lines.replay_note})" if lines.replay_note else ""
        parts.append(empty(f"No line for retraining every month: no replay of it{why}. This "
                           "adds it (minutes: one retraining per month)",
                           f"esteira ct replay -p {facts.root} --from {first} --to {last} "
                           "--policy monthly"))  # fmt: skip
    usable = [r for r in facts.done.rows if not r.quarantined]
    if usable and all(r.retrained for r in usable):
        parts.append(Markup("<p>The live run retrained on every batch it could train on: the "
                            "chosen policy is the monthly reference, measured live.</p>"))
    if lines.quarantined:
        parts.append(Markup("<p class=sub>Quarantined, so measured by no line: {}.</p>")
                     .format(", ".join(lines.quarantined)))  # fmt: skip
    return Markup("").join(parts)


def _means(lines: Lines, names: list[str]) -> Markup:
    common, means = lines.means()
    rows = []
    for name, mean, retrains in zip(names, means, lines.retrains, strict=False):
        rows.append([name, f"{mean:.4f}" if mean is not None else "-",
                     "-" if retrains is None else retrains])  # fmt: skip
    over = (f"over the {len(common)} months every line measured ({', '.join(common)})"
            if common else "no month measured by every line")  # fmt: skip
    return table(["policy", f"mean {lines.metric}", "retrainings"], rows, numeric=[1, 2]) + \
        Markup("<p class=sub>Means {}.</p>").format(over)  # fmt: skip


# 2. drift ------------------------------------------------------------------------------


def _drift(facts: Facts) -> Markup:
    from esteira.dashboard.usage_pages import drift_heatmap

    head = Markup("<h2 id=drift>2. Drift per feature over the year</h2>")
    if facts.monitoring is None:
        return head + empty("No monitoring record in the demo's home yet: feeding a batch "
                            "monitors it")  # fmt: skip
    note = Markup("<p class=sub>Each month against the training data of the champion that "
                  "scored it (the label says which, where it changed).{}</p>").format(
        f" Quarantined, not monitored: {', '.join(facts.lines.quarantined)}."
        if facts.lines.quarantined else "")  # fmt: skip
    return head + drift_heatmap(_with_gaps(facts.monitoring, facts.done.rows), "month") + note


def _with_gaps(found: Monitoring, rows: list[BatchRow]) -> Monitoring:
    """The monitoring records with a blank column where a batch was quarantined, in the
    order the batches were fed (records of other batches after them)."""
    from dataclasses import replace

    labels: dict[str, list[str]] = {}
    for record, label in zip(found.records, found.batches, strict=True):
        labels.setdefault(record.batch, []).append(label)
    columns = []
    for row in rows:
        columns += [f"{row.batch} quarantined"] if row.quarantined else labels.pop(row.batch, [])
    columns += [label for rest in labels.values() for label in rest]
    return replace(found, batches=columns)


# 3. what happened to each month, and level 2 -------------------------------------------


def _timeline(facts: Facts) -> Markup:
    from esteira.demo.report_data import gate_figure

    parts = [Markup("<h2 id=timeline>3. Triggers, gates and promotions</h2>")]
    level0 = facts.level0
    rows = []
    if level0.run_id:
        gate = (Markup("{} {}").format(badge("passed", "ok"), gate_figure(level0.gate))
                if level0.gate else "-")  # fmt: skip
        rows.append([level0.trained or "level 0", "-", "by hand (level 0)", gate,
                     badge(f"v{level0.champion}", "ok")])  # fmt: skip
    rows += [_month(m, facts.lines.metric) for m in facts.months]
    parts.append(table(["month", "monitored", "fired", "gates", "champion"], rows)
                 if rows else empty("Nothing run yet"))  # fmt: skip
    parts.append(Markup("<h3>Level 2: staging and prod</h3>"))
    if facts.level2:
        parts.append(table(["when (UTC)", "environment", "event", "subject", "detail"], [
            [when(e.at), e.environment, badge(e.what, e.kind), e.subject, e.detail]
            for e in facts.level2
        ]))  # fmt: skip
    else:
        parts.append(empty(f"No level 2 event: its deployments, CD decisions and approved "
                           f"promotion show here once {facts.home / 'environments'} holds the "
                           "staging and prod homes"))  # fmt: skip
    return Markup("").join(parts)


def _month(month: Month, metric: str) -> list[object]:
    from esteira.demo.report_data import gate_figure

    row = month.row
    seen = "-" if row.metric is None else f"{metric} {row.metric:.4f} with v{row.champion}"
    if row.drift_share is not None:
        seen += f", drift {row.drift_share:.0%}"
    gate: object = "-"
    if month.gate is not None:
        verdict = badge("passed", "ok") if month.gate.passed else badge("refused", "warn")
        gate = Markup("{} v{} {}").format(verdict, month.gate.version, gate_figure(month.gate))
    if row.quarantined:
        champion = Markup("{} {}; v{} stays").format(badge("quarantined", "bad"),
                                                     row.quarantined, row.champion)  # fmt: skip
    elif row.failed:
        champion = Markup("{} {}; v{} stays").format(badge("retraining failed", "bad"),
                                                     row.failed, row.champion)  # fmt: skip
    elif month.promoted is not None:
        moved = month.promoted
        champion = Markup("{} at {}").format(
            badge(f"v{moved.from_version or '-'} → v{moved.to_version}", "ok"), when(moved.at))
    else:
        champion = f"v{row.champion_after or row.champion} kept"
    fired = ", ".join(row.fired) or ("-" if row.quarantined else "none")
    return [row.batch, seen, fired, gate, champion]


# 4. the traffic ------------------------------------------------------------------------


def _traffic(facts: Facts) -> Markup:
    done = facts.done
    parts = [Markup("<h2 id=traffic>4. Requests and latency during the swaps</h2>"),
             cards([
                 ("requests", f"{done.requests:,}", ""),
                 ("failed", f"{done.failed:,}", ""),
                 ("versions served", " → ".join(f"v{v}" for v in done.versions_served) or "-",
                  ""),
                 ("latency p50", f"{done.latency_p50_ms:.1f} ms", ""),
                 ("latency p99", f"{done.latency_p99_ms:.1f} ms", ""),
             ])]  # fmt: skip
    if not facts.traffic:
        return Markup("").join([*parts, empty("No answer kept in the demo's home yet")])
    parts.append(table(
        ["run started (UTC)", "seconds", "requests", "failed", "versions", "p50 ms", "p99 ms"],
        [_run_row(t) for t in facts.traffic],
        numeric=[1, 2, 3, 5, 6],
    ))  # fmt: skip
    kept = sum(t.requests for t in facts.traffic)
    if kept < done.requests:
        parts.append(Markup("<p class=sub>The charts show the {:,} answers kept; earlier runs "
                            "were not kept.</p>").format(kept))  # fmt: skip
    promoted_by = {r.champion_after: r.batch for r in done.rows
                   if r.champion_after and r.champion_after != r.champion}  # fmt: skip
    for run in facts.traffic:
        if run.swaps or run.failed or run.seconds >= CHARTED_S:  # not a rerun's few seconds
            parts.append(_run_charts(run, promoted_by))
    return Markup("").join(parts)


def _run_row(run: RunTraffic) -> list[str]:
    p50, p99 = (f"{ms:.1f}" for ms in run.overall_ms) if run.overall_ms else ("-", "-")
    return [when(run.started), f"{run.seconds:.0f}", f"{run.requests:,}", f"{run.failed:,}",
            " → ".join(f"v{v}" for v in run.versions) or "-", p50, p99]  # fmt: skip


def _run_charts(run: RunTraffic, promoted_by: dict[str, str]) -> Markup:
    last = len(run.labels) - 1

    def at(seconds: float) -> float:  # bucket i is drawn at x = i, over [i, i + 1) buckets
        return min(max(seconds / run.bucket_s - 0.5, 0.0), last)

    marks = [Mark(at(s), f"v{v}" + (f" (after {promoted_by[v]})" if v in promoted_by else ""))
             for s, v in run.swaps]  # fmt: skip
    marks += [Mark(at(s), f"{n} failed: {error}", "alarm") for s, n, error in run.failures]
    started = when(run.started)
    return (
        line_chart(run.labels, {"requests/s": run.rate}, f"Requests per second, run of "
                   f"{started} UTC (per {run.bucket_s} s; green: a new version answers, red: "
                   "failures)", marks=marks, from_zero=True)
        + line_chart(run.labels, {"p50": run.p50_ms, "p99": run.p99_ms},
                     f"Latency (ms) of the answered requests, run of {started} UTC", marks=marks,
                     from_zero=True)
    )  # fmt: skip
