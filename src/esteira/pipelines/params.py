"""Pipeline parameters: defaults from code, overridden by esteira.toml, then by the caller."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esteira.errors import PipelineDefinitionError
from esteira.pipelines.dag import Pipeline

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def resolve_params(pipeline: Pipeline, *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge overrides (later wins) over the pipeline's defaults, refusing unknown names."""
    merged = dict(pipeline.params)
    for layer in overrides:
        unknown = sorted(set(layer) - set(pipeline.params))
        if unknown:
            raise PipelineDefinitionError(
                f"pipeline '{pipeline.name}' has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are {sorted(pipeline.params)}"
            )
        merged.update(layer)
    return merged


def parse_assignments(pipeline: Pipeline, assignments: list[str]) -> dict[str, Any]:
    """`["max_iter=300", "start=2013-02"]` -> typed values, typed like each default."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise PipelineDefinitionError(f"--param {item!r}: write it as NAME=VALUE")
        default = pipeline.params.get(key)
        parsed[key] = _coerce(key, text, default)
    return parsed


def _coerce(key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError("expected true or false")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        return json.loads(text)
    except json.JSONDecodeError:
        return text
    except ValueError as e:
        raise PipelineDefinitionError(
            f"--param {key}={text}: {e} (the default is {default!r})"
        ) from None
