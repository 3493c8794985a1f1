"""Built-in steps: what every project would otherwise write the same way. A pipeline lists
them beside its own steps; like any step, they receive upstream outputs by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from esteira.errors import ConfigError, PipelineDefinitionError
from esteira.pipelines.step import step

if TYPE_CHECKING:
    import pandas as pd

    from esteira.pipelines.context import Context


@step(outputs="decision", settings=("gates", "model", "ct.label"))
def promote(
    ctx: Context, registered: Any, test_set: pd.DataFrame, label: str | None = None
) -> dict[str, Any]:
    """Judge the version the pipeline just registered and make it the champion if it passes.

    Needs two upstream outputs: `registered`, the new version (`{"name": ..., "version": ...}`
    or what `ctx.log_model` returns), and `test_set`, data the model did not learn from, with
    its `label` column (default: `[ct] label`). The gates are `[gates]` in esteira.toml, whose
    every key has a default that fits the model's task. Returns the decision: passed, and each
    gate's verdict with its reason and figures; it is stored, and a failure raises an alert.
    Where the champion moves by other means (`[environments.NAME] promotion`), a version
    that passes stays challenger, `awaiting` "cd" (staging: until it passes `esteira cd`) or
    "approval" (prod: until a person runs `esteira promote ... --approve`).
    """
    name, version = registered_version(ctx.step, registered)
    label = label or ctx.project.settings.ct.label
    if label not in test_set.columns:
        columns = ", ".join(map(str, test_set.columns))
        raise ConfigError(
            f"step '{ctx.step}': test_set has no label column '{label}'; set [ct] label in "
            f"esteira.toml or the pipeline parameter label (columns: {columns})"
        )
    from esteira.registry import CHAMPION, Registry, alias_lock

    registry = Registry(ctx.project)
    with alias_lock(ctx.project, name):  # judged against the champion it would replace
        registry.settle(name)  # a promotion a kill cut short is finished first
        champion = registry.by_alias(name, CHAMPION)
        already = champion is not None and champion.version == version
        before = _passing_decision(ctx, name, version) if already else None
        if before is not None:  # a rerun after its promotion: finished, not judged again
            return before | {"awaiting": None}
        decision = ctx.validate_model(name, version, test_set, label=label)
        awaiting = ctx.held_for() if decision.passed else None
        if decision.passed and not awaiting and not already:
            ctx.promote(name, version, reason=decision.summary())
    return decision.to_dict() | {"awaiting": awaiting}


def _passing_decision(ctx: Context, name: str, version: str) -> dict[str, Any] | None:
    """The decision that made `version` the champion, as the step returned it."""
    found = ctx.project.metadata.gate_decisions(name, version=version, passed=True, limit=1)
    return dict(found[0].checks) if found else None


def registered_version(step_name: str, registered: Any) -> tuple[str, str]:
    """The model name and version in a `registered` output: the dict a register step
    returns, or what `ctx.log_model` returned."""
    if isinstance(registered, Mapping):
        name, version = registered.get("name"), registered.get("version")
    else:
        name, version = getattr(registered, "name", None), getattr(registered, "version", None)
    if not name or not version:
        raise PipelineDefinitionError(
            f"step '{step_name}' needs output 'registered' to name the new version: return "
            '{"name": m.name, "version": m.version} from the step that calls ctx.log_model '
            f"(m), or m itself; got {registered!r}"
        )
    return str(name), str(version)
