"""The shape of esteira.toml, read from its pydantic models: sections, keys, their types in
plain words, and validation errors told in those words ("'gates.treshold': unknown key; did
you mean 'gates.thresholds'?"). Works on any tree of section models; config.py owns the tree.
"""

from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

NAME = "NAME"
"""A user-chosen table name in a section path: pipelines.NAME, validation.columns.NAME."""


@dataclass(frozen=True)
class Section:
    """One table of esteira.toml: its dotted path (`ct.triggers`, `pipelines.NAME`), its
    model, and what it is for (the docstring of the key that opens it, else of its model)."""

    path: str
    model: type[BaseModel]
    doc: str

    @property
    def keys(self) -> list[str]:
        return own_keys(self.model)


def own_keys(model: type[BaseModel]) -> list[str]:
    """A table's own settings; keys that open a sub-table are sections of their own."""
    return [k for k, f in model.model_fields.items() if section_model(f.annotation) is None]


def sections(root: type[BaseModel], prefix: str = "") -> Iterator[Section]:
    """Every table under `root`, depth first, in declaration order."""
    for key, field in root.model_fields.items():
        model = section_model(field.annotation)
        if model is None:
            continue
        path = f"{prefix}{key}" + (f".{NAME}" if _is_dict(field.annotation) else "")
        yield Section(path, model, field.description or inspect.cleandoc(model.__doc__ or ""))
        yield from sections(model, path + ".")


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a table a key opens: `Model`, or `dict[str, Model]` (one table per name)."""
    inner = _without_none(annotation)
    if _is_dict(inner):
        inner = get_args(inner)[1]
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def describe(annotation: Any) -> str:
    """A type as a user reads it: "a number", "a list of strings", "one of "a", "b""."""
    inner = _without_none(annotation)
    origin = get_origin(inner)
    if origin is Literal:
        return "one of " + ", ".join(toml_value(v) for v in get_args(inner))
    if origin is list:
        return f"a list of {_plural(get_args(inner)[0])}"
    if _is_dict(inner):
        value = get_args(inner)[1]
        if section_model(value) is not None:
            return "a table per name"
        return "a table of any values" if value is Any else f"a table of {_plural(value)}"
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return "a table"
    return _SINGULAR.get(inner, "any value")


def describe_field(field: FieldInfo) -> str:
    """`describe` of the field's type, with its limits: "a number > 0 and < 1"."""
    limits = [
        f"{sign} {getattr(m, attr)}"
        for m in field.metadata
        for attr, sign in _LIMITS.items()
        if getattr(m, attr, None) is not None
    ]
    base = describe(field.annotation)
    return f"{base} {' and '.join(limits)}" if limits else base


def toml_value(value: Any) -> str:
    """`value` written as TOML (strings quoted, booleans lower case, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
            if value
            else "{}"
        )
    return repr(value)


def explain(path: object, error: ValidationError, root: type[BaseModel], raw: Mapping) -> str:
    """Each invalid setting on one line: unknown keys with the nearest valid one, wrong types
    with the type expected, in the words of the file (`raw` is what it holds)."""
    lines = dict.fromkeys(_explain_one(item, root, raw) for item in error.errors())
    return "\n".join([f"{path} has {len(lines)} invalid setting(s):", *(f"  - {x}" for x in lines)])


def _explain_one(item: Mapping[str, Any], root: type[BaseModel], raw: Mapping) -> str:
    keys, parent, annotation, field = _locate(root, item["loc"])
    dotted = ".".join(keys)
    if item["type"] == "extra_forbidden":
        return _unknown(keys, parent, root, item.get("input"))
    if annotation is not None and _wants_expectation(item["type"]):
        expected = describe_field(field) if field else describe(annotation)
        got = _lookup(raw, keys, item.get("input"))
        return f"'{dotted}': expected {expected}, got {got!r}"
    message = item["msg"].removeprefix("Value error, ")
    shown = "input" in item and not isinstance(item["input"], Mapping)  # not a whole section
    return f"'{dotted}': {message}" + (f" (got {item['input']!r})" if shown else "")


def _unknown(keys: list[str], parent: type[BaseModel], root: type[BaseModel], given: Any) -> str:
    name, where = keys[-1], ".".join(keys[:-1])
    valid = list(parent.model_fields)
    if isinstance(given, Mapping):
        kind = "unknown section"
    else:
        kind = "unknown key" if where else "key outside any section"
    text = f"'{'.'.join(keys)}': {kind}"
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        text += f"; did you mean '{where + '.' if where else ''}{close[0]}'?"
    else:
        elsewhere = [s.path for s in sections(root) if name in s.keys]
        if elsewhere:
            text += "; it belongs in " + " or ".join(f"[{s}]" for s in elsewhere)
    return text + (
        f" ([{where}] has: {', '.join(valid)})" if where else f" (sections: {', '.join(valid)})"
    )


def _locate(
    root: type[BaseModel], loc: tuple[Any, ...]
) -> tuple[list[str], type[BaseModel], Any, FieldInfo | None]:
    """Follow an error location through the models: the key path as the file writes it, the
    innermost section, and the type of the last key (None when that section has no such key)
    with its field when it is a section's own key (not an entry of a table)."""
    keys: list[str] = []
    section, annotation, field = root, root, None
    for part in loc:
        inner = _without_none(annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            section = inner
            keys.append(str(part))
            field = inner.model_fields.get(str(part))
            if field is None:
                return keys, section, None, None
            annotation = field.annotation
        elif _is_dict(inner):
            keys.append(str(part))
            annotation, field = get_args(inner)[1], None
        else:
            break  # an item of a list: the key's own type says what was expected
    return keys, section, annotation, field


def _lookup(raw: Mapping, keys: list[str], default: Any) -> Any:
    value: Any = raw
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _is_dict(annotation: Any) -> bool:
    return get_origin(annotation) is dict


def _wants_expectation(kind: str) -> bool:
    """Whether pydantic's error is best told as "expected <type and limits>, got <value>"."""
    return kind in _TYPE_AND_LIMIT_ERRORS or kind.endswith(("_type", "_parsing"))


def _plural(annotation: Any) -> str:
    return _PLURAL.get(annotation, "values")


_SINGULAR = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
_PLURAL = {bool: "booleans", int: "whole numbers", float: "numbers", str: "strings"}
_LIMITS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
_TYPE_AND_LIMIT_ERRORS = {
    "literal_error", "int_from_float", "model_type", "model_attributes_type",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal",
}  # fmt: skip
