"""A step is a plain Python function; the decorator only reads its signature.

Data flows by name: an argument named like another step's output receives that output;
any other argument is a parameter (its default, if any, is the parameter's default); an
argument named `ctx` receives the run's `Context`. The decorated function stays callable
as before, so a notebook can call it directly.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from esteira.errors import PipelineDefinitionError
from esteira.provenance import source_of

CONTEXT_ARG = "ctx"
_NO_DEFAULT = inspect.Parameter.empty


@dataclass(eq=False)
class Step:
    func: Callable[..., Any]
    name: str
    outputs: tuple[str, ...]
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Explicit wiring: function argument -> name of the upstream output it receives."""
    version: str = ""
    """Bump to invalidate the cache when code the step calls (not its own source) changed."""
    settings: tuple[str, ...] = ()
    """Settings of esteira.toml its result depends on ("gates", "ct.label"): their values
    join the cache key, so editing them reruns the step."""

    def __post_init__(self) -> None:
        unknown = set(self.inputs) - set(self.arguments)
        if unknown:
            raise PipelineDefinitionError(
                f"step '{self.name}' wires {sorted(unknown)} in inputs=, but its function "
                f"has no such argument; its arguments are {list(self.arguments)}"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    @cached_property
    def wants_context(self) -> bool:
        return CONTEXT_ARG in self.signature.parameters

    @cached_property
    def arguments(self) -> dict[str, Any]:
        """Arguments other than `ctx`, with their defaults (or `inspect.Parameter.empty`)."""
        return {
            name: p.default
            for name, p in self.signature.parameters.items()
            if name != CONTEXT_ARG and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def source_name(self, argument: str) -> str:
        """The output name an argument reads (itself unless wired explicitly)."""
        return self.inputs.get(argument, argument)

    @cached_property
    def code_hash(self) -> str:
        """Hash of the step's source (decorator included), its version, and what it uses
        from its own module: helper functions (their source, and so on down) and objects
        that carry a `fingerprint`, such as feature views. Editing a helper or a view thus
        reruns the steps that use it; code elsewhere needs `version=`."""
        parts = [self.version]
        seen: set[int] = set()
        pending: list[Any] = [self.func]
        while pending:
            fn = pending.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            parts.append(source_of(fn))
            for name in fn.__code__.co_names:
                value = fn.__globals__.get(name)
                values = value if isinstance(value, list | tuple) else [value]
                parts += [str(v.fingerprint) for v in values if hasattr(v, "fingerprint")]
                if inspect.isfunction(value) and value.__module__ == self.func.__module__:
                    pending.append(value)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Step({self.name!r}, outputs={list(self.outputs)})"


@overload
def step(func: Callable[..., Any], /) -> Step: ...
@overload
def step(
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    inputs: Mapping[str, str] | None = None,
    version: str = "",
    settings: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    inputs: Mapping[str, str] | None = None,
    version: str = "",
    settings: Sequence[str] = (),
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Mark a function as a pipeline step.

    `outputs` names what the function returns (default: the function's name; several names
    when it returns a tuple or a dict). `inputs` wires arguments to outputs of other names.
    `settings` names the settings of esteira.toml the step reads through `ctx` (e.g.
    "gates"): a change to them reruns it, as a change of its parameters does.

    >>> @step(outputs=("train", "test"))
    ... def split(features, test_fraction: float = 0.2): ...
    """

    def decorate(f: Callable[..., Any]) -> Step:
        step_name = name or f.__name__
        if outputs is None:
            names: tuple[str, ...] = (step_name,)
        elif isinstance(outputs, str):
            names = (outputs,)
        else:
            names = tuple(outputs)
        return Step(f, step_name, names, dict(inputs or {}), version, tuple(settings))

    return decorate(func) if func is not None else decorate


class OutputsMismatch(PipelineDefinitionError):
    """A step returned something other than the outputs it declares; `missing` names the
    declared outputs it did not return."""

    def __init__(self, step: str, declared: Sequence[str], missing: Sequence[str], got: str):
        self.step, self.missing = step, list(missing)
        super().__init__(
            f"step '{step}' declares outputs {list(declared)} but returned {got}; return a "
            f"tuple of {len(declared)} values or a dict with those keys"
        )


def split_outputs(step: Step, value: Any) -> dict[str, Any]:
    """Map a step's return value to its declared output names."""
    names = step.outputs
    if len(names) == 1:
        return {names[0]: value}
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        extra = sorted(map(str, set(value) - set(names)))
        if not missing and not extra:
            return {n: value[n] for n in names}
        got = f"a dict without {missing}" if missing else "a dict"
        got += f" with undeclared keys {extra}" if extra else ""
        raise OutputsMismatch(step.name, names, missing, got)
    if isinstance(value, tuple) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    if isinstance(value, tuple):
        got = f"a tuple of {len(value)} values, without {list(names[len(value) :])}"
        raise OutputsMismatch(step.name, names, names[len(value) :], got)
    raise OutputsMismatch(step.name, names, names, f"one {type(value).__name__}")
