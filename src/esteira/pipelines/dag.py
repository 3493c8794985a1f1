"""A pipeline: steps wired by name into a DAG, checked when it is built."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from esteira.errors import PipelineDefinitionError
from esteira.pipelines.step import _NO_DEFAULT, Step


class Pipeline:
    """Steps in execution order, with the data edges and parameters between them."""

    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        params: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.description = description
        _check_steps(name, steps)
        self.producer: dict[str, Step] = {}
        for s in steps:
            for out in s.outputs:
                if out in self.producer:
                    raise PipelineDefinitionError(
                        f"pipeline '{name}': output '{out}' is produced by both "
                        f"'{self.producer[out].name}' and '{s.name}'; rename one"
                    )
                self.producer[out] = s
        self.params = _collect_params(name, steps, self.producer, params or {})
        self.steps: list[Step] = _topological_order(name, steps, self.producer)
        self.by_name = {s.name: s for s in self.steps}

    def data_inputs(self, step: Step) -> dict[str, str]:
        """Argument -> upstream output name, for the arguments fed by other steps."""
        return {
            arg: step.source_name(arg)
            for arg in step.arguments
            if step.source_name(arg) in self.producer
        }

    def param_names(self, step: Step) -> list[str]:
        return [arg for arg in step.arguments if step.source_name(arg) not in self.producer]

    def upstream(self, step: Step) -> list[Step]:
        return [self.producer[out] for out in self.data_inputs(step).values()]

    def downstream(self, step: Step) -> list[Step]:
        """Every step that depends on `step`, directly or not, in execution order."""
        reached = {step.name}
        found = []
        for s in self.steps:
            if any(u.name in reached for u in self.upstream(s)):
                reached.add(s.name)
                found.append(s)
        return found

    def up_to(self, step: Step) -> list[Step]:
        """`step` and every step it depends on, directly or not, in execution order."""
        needed = {step.name}
        for s in reversed(self.steps):
            if s.name in needed:
                needed |= {u.name for u in self.upstream(s)}
        return [s for s in self.steps if s.name in needed]

    def step(self, name: str) -> Step:
        try:
            return self.by_name[name]
        except KeyError:
            raise PipelineDefinitionError(
                f"pipeline '{self.name}' has no step '{name}'; its steps are "
                f"{[s.name for s in self.steps]}"
            ) from None

    @property
    def code_version(self) -> str:
        joined = "".join(f"{s.name}:{s.code_hash};" for s in self.steps)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[s.name for s in self.steps]})"


def pipeline(
    name: str,
    steps: Sequence[Step],
    params: Mapping[str, Any] | None = None,
    description: str = "",
) -> Pipeline:
    """Build a pipeline from steps; the order given does not matter, the data edges do."""
    return Pipeline(name, steps, params, description)


def _check_steps(name: str, steps: Sequence[Step]) -> None:
    if not steps:
        raise PipelineDefinitionError(f"pipeline '{name}' has no steps")
    seen: set[str] = set()
    for s in steps:
        if not isinstance(s, Step):
            raise PipelineDefinitionError(
                f"pipeline '{name}': {s!r} is not a step; decorate it with @esteira.step"
            )
        if s.name in seen:
            raise PipelineDefinitionError(f"pipeline '{name}' has two steps named '{s.name}'")
        seen.add(s.name)


def _collect_params(
    name: str, steps: Iterable[Step], producer: Mapping[str, Step], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Parameter defaults: from the pipeline, else from the function signatures."""
    params: dict[str, Any] = {}
    missing: list[str] = []
    for s in steps:
        for arg, default in s.arguments.items():
            if s.source_name(arg) in producer:
                continue
            if arg in given:
                params[arg] = given[arg]
            elif default is not _NO_DEFAULT:
                params.setdefault(arg, default)
            elif arg not in params:
                missing.append(f"'{arg}' of step '{s.name}'")
    missing = [m for m in missing if m.split("'")[1] not in params]
    if missing:
        raise PipelineDefinitionError(
            f"pipeline '{name}': no step produces and no parameter provides "
            f"{', '.join(missing)}; add a step with that output, wire it with "
            f"@step(inputs=...), or give a default in params="
        )
    unused = set(given) - set(params)
    if unused:
        raise PipelineDefinitionError(
            f"pipeline '{name}': params {sorted(unused)} are read by no step"
        )
    return params


def _topological_order(
    name: str, steps: Sequence[Step], producer: Mapping[str, Step]
) -> list[Step]:
    """Kahn's algorithm, keeping the declared order among ready steps; cycles are errors."""
    deps = {
        s.name: {
            producer[s.source_name(a)].name for a in s.arguments if s.source_name(a) in producer
        }
        for s in steps
    }
    for s in steps:
        if s.name in deps[s.name]:
            raise PipelineDefinitionError(
                f"pipeline '{name}': step '{s.name}' reads its own output"
            )
    order: list[Step] = []
    done: set[str] = set()
    pending = list(steps)
    while pending:
        ready = [s for s in pending if deps[s.name] <= done]
        if not ready:
            raise PipelineDefinitionError(
                f"pipeline '{name}' has a cycle: {' → '.join(_find_cycle(deps, pending))}"
            )
        for s in ready:
            order.append(s)
            done.add(s.name)
        pending = [s for s in pending if s.name not in done]
    return order


def _find_cycle(deps: Mapping[str, set[str]], pending: Sequence[Step]) -> list[str]:
    remaining = {s.name for s in pending}
    path = [pending[0].name]
    while True:
        nxt = sorted(deps[path[-1]] & remaining)[0]
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
