"""The demo's level 2: the pipeline's code goes through CI and CD to prod, in the demo's
home (its staging and prod stores under `environments/`), as a team would run it:

    esteira ci                      the ML test battery on the code
    esteira release                 an immutable release of it
    esteira deploy --env staging    the release built last
    esteira run train --env staging --param end=LAST    staging trains the release on the data
    esteira cd --env staging        data and model gates, smoke and load test of the service
    esteira promote MODEL --env prod --approve --reason ...

Each step is run in this process (the commands' own functions) and recorded in the demo's
state, so a rerun skips what was done."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.errors import EsteiraError

if TYPE_CHECKING:
    from esteira.config import Settings

Say = Callable[[str], None]


@dataclass
class Delivered:
    """One step of level 2: the command it stands for, what came of it, how long it took."""

    step: str
    command: str
    outcome: str
    seconds: float


class DeliveryFailed(EsteiraError):
    """A level 2 step refused the code or the model: the demo stops there, saying why."""


def deliver(
    root: Path, home: Path, last_batch: str, done: list[Delivered], say: Say
) -> list[Delivered]:
    """Level 2 of the project at `root` with every store in `home`; `done`: the steps a
    run before finished (kept, not run again). Returns every step's record."""
    from esteira.config import ENV_VARIABLE, HOME_VARIABLE, load_settings

    dev = {HOME_VARIABLE: str(home)}
    staging, prod = dev | {ENV_VARIABLE: "staging"}, dev | {ENV_VARIABLE: "prod"}
    settings = load_settings(root, dev)
    model, pipeline, param = settings.ct.model, settings.ct.pipeline, settings.ct.batch_param
    shown = f"-p {_shown(root)}"
    kept = {d.step: d for d in done}
    steps: list[tuple[str, str, Callable[[], str]]] = [
        ("ci", f"esteira ci {shown}", lambda: _ci(root)),
        ("release", f"esteira release {shown}", lambda: _release(settings)),
        ("deploy", f"esteira deploy --env staging {shown}", lambda: _deploy(root, staging)),
        ("train in staging", f"esteira run {pipeline} --env staging --param {param}={last_batch} "
         f"{shown}", lambda: _train(root, staging, pipeline, {param: last_batch})),
        ("cd", f"esteira cd --env staging {shown}", lambda: _cd(root, staging, say)),
        ("promote to prod", f'esteira promote {model} --env prod --approve --reason "..." '
         f"{shown}", lambda: _to_prod(root, prod, model)),
    ]  # fmt: skip
    if all(step in kept for step, _, _ in steps):
        say(f"  done in a run before: {', '.join(kept)}")
    for step, command, run in steps:
        if step in kept:
            continue
        say(f"  [dim]$ {command}[/]")
        started = time.perf_counter()
        outcome = run()
        kept[step] = Delivered(step, command, outcome, round(time.perf_counter() - started, 1))
        done.append(kept[step])
        say(f"    {outcome} ({kept[step].seconds:.0f} s)")
    return done


def _ci(root: Path) -> str:
    from esteira.cicd.battery import run_battery

    results = run_battery(root)
    failed = [r for r in results if not r.passed]
    if failed:
        raise DeliveryFailed(
            "esteira ci failed: " + "; ".join(f"{r.name}: {r.reason}" for r in failed)
        )
    skipped = sum(r.skipped for r in results)
    return f"the ML test battery passed: {len(results) - skipped} checks, {skipped} skipped"


def _release(settings: Settings) -> str:
    from esteira import releases

    built, _ = releases.build(settings)
    dirty = " (from uncommitted changes)" if built.dirty else ""
    return f"release {built.id}{dirty}: {len(built.files)} files, {len(built.packages)} packages"


def _deploy(root: Path, environ: dict[str, str]) -> str:
    """The release built last, as `esteira deploy` without one deploys."""
    from esteira import releases
    from esteira.project import open_project

    staging = open_project(root, environ)
    newest = releases.newest(staging.settings)
    done = releases.deploy(staging.settings, staging.metadata, newest, "the demo's level 2")
    return f"staging now runs release {done.release}"


def _train(root: Path, environ: dict[str, str], pipeline: str, params: dict[str, str]) -> str:
    from esteira.pipelines.runner import run_pipeline
    from esteira.project import load_project

    result = run_pipeline(load_project(root, environ), pipeline, params)
    registered = result.output("registered")
    decision = result.output("decision")
    if not decision.get("passed"):
        raise DeliveryFailed(f"the gates refused version {registered['version']} in staging: "
                             f"see esteira show {result.run_id[:12]} --env staging")  # fmt: skip
    return (f"run {result.run_id[:12]} trained version {registered['version']}; its gates "
            f"passed, it awaits {decision.get('awaiting') or 'nothing'}")  # fmt: skip


def _cd(root: Path, environ: dict[str, str], say: Say) -> str:
    from esteira.cicd.cd import run_cd

    outcome = run_cd(root, environ, tell=lambda message: say(f"    {message}"))
    if not outcome.passed:
        raise DeliveryFailed(outcome.summary())
    load = next((c for c in outcome.checks if c.name == "load_test"), None)
    figures = f"; load test: {load.reason}" if load else ""
    return f"version {outcome.version} passed the CD gates and is staging's champion{figures}"


def _to_prod(root: Path, environ: dict[str, str], model: str) -> str:
    from esteira.cicd.promotion import promote_from_source

    reason = "approved after the CD gates in staging (the demo)"
    done = promote_from_source(root, environ, model, None, reason, approved=True)
    return (
        f"staging's version {done.source_version} is prod's champion (version "
        f"{done.change.to_version} there), approved"
    )


def _shown(root: Path) -> str:
    try:
        return str(root.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(root)
