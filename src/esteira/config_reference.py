"""Every setting of esteira.toml, told from the config classes themselves: the reference
(docs/configuration.md), the defaults as a commented esteira.toml, and a project's effective
settings with where each value came from. Written from the models, so it cannot go stale.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from esteira.config import (
    CONFIG_FILE,
    ENVIRONMENT,
    HOME_VARIABLE,
    Config,
    load_settings,
    read_config,
    with_environment,
)
from esteira.config_schema import NAME, describe_field, own_keys, sections, toml_value
from esteira.metrics import default_metric

REGENERATE = "esteira config --reference > docs/configuration.md"

# Keys whose empty default is resolved when settings load (a folder name, a path in the
# project's home): the effective value is the resolved one, under its `Settings` name.
_RESOLVED = {
    "project.name": "name",
    "tracking.uri": "tracking_uri",
    "tracking.registry_uri": "registry_uri",
    "tracking.experiment": "experiment",
    "metadata.url": "metadata_url",
    "lake.path": "lake_path",
}


@dataclass(frozen=True)
class SettingValue:
    key: str
    """Dotted, as errors name it: `gates.metric`, `pipelines.train.params`."""
    value: Any
    source: str
    """"default", the config file's name, or the environment variable that set it."""


@dataclass(frozen=True)
class EffectiveSettings:
    root: Path
    home: Path
    home_source: str
    values: list[SettingValue]


def reference_markdown() -> str:
    """The configuration reference: every section and key with type, default and meaning."""
    overrides = ", ".join(f"`{v}` ({k})" for k, v in ENVIRONMENT.items())
    intro = (
        f"A project's settings live in `{CONFIG_FILE}` beside its code. Every key is optional "
        "and has a default that works on one laptop; a key or section esteira does not know "
        "is an error that names the nearest valid one, and a value of the wrong type names "
        f"the type expected. Environment variables override: {overrides}; `{HOME_VARIABLE}` "
        "moves the folder of the embedded stores (by default `<project>/.esteira`): dev's, "
        "and the other environments' under `environments/NAME` in it. "
        "`esteira config` shows a project's effective settings and where each came from; "
        "`esteira config --defaults` prints the defaults as an esteira.toml to copy."
    )
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from src/esteira/config.py by `{REGENERATE}`; do not edit. -->",
        "",
        textwrap.fill(intro, width=92, break_on_hyphens=False),
    ]
    for section in sections(Config):
        out += ["", f"## [{section.path}]", "", _one_line(section.doc), ""]
        if not section.keys:
            continue
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key in section.keys:
            field = section.model.model_fields[key]
            default = _default(field)
            shown = "unset" if default is None else f"`{toml_value(default)}`"
            cells = [f"`{key}`", describe_field(field), shown, _one_line(field.description)]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def defaults_toml() -> str:
    """Every key with its default, commented out: an esteira.toml to copy and edit."""
    out = [
        f"# {CONFIG_FILE}: every key with its default. Every key is optional: uncomment and",
        "# change only what your project needs. Tables named NAME repeat per name (a pipeline,",
        "# a column).",
    ]
    for section in sections(Config):
        header = f"[{section.path}]"
        out += ["", *_comment(section.doc), f"# {header}" if NAME in section.path else header]
        for key in section.keys:
            field = section.model.model_fields[key]
            default = _default(field)
            out += _comment(field.description or "")
            if default is None:
                out.append(f"# {key} = ...   (unset; {describe_field(field)})")
            else:
                out.append(f"# {key} = {toml_value(default)}")
    return "\n".join(out) + "\n"


def effective_settings(
    root: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> EffectiveSettings:
    """A project's settings after the file and the environment, every key with its source."""
    env = os.environ if environ is None else environ
    settings = load_settings(root, dict(env))  # checks everything the way a run would
    in_file = read_config(settings.root / CONFIG_FILE)
    effective = with_environment(in_file, env)
    values = []
    for path, section, read, named in _tables(effective, in_file):
        # a named table (a column's limits) shows what it sets; the rest comes from its parent
        keys = [k for k in own_keys(type(section)) if not named or k in read.model_fields_set]
        for key in keys:
            dotted = f"{path}.{key}"
            variable = ENVIRONMENT.get(dotted)
            if variable and env.get(variable):
                source = variable
            elif key in read.model_fields_set:
                source = CONFIG_FILE
            else:
                source = "default"
            if dotted in _RESOLVED:
                value = str(getattr(settings, _RESOLVED[dotted]))
            else:
                value = getattr(section, key)
            if key == "metric" and not value:  # unset: the task's, once the task is known
                task = settings.model.task
                value = (
                    f"{default_metric(task)} ({task} default)"
                    if task
                    else "the task's default (the task is inferred at the first training)"
                )
            values.append(SettingValue(dotted, value, source))
    home_source = HOME_VARIABLE if env.get(HOME_VARIABLE) else "default"
    return EffectiveSettings(settings.root, settings.home, home_source, values)


def _tables(
    effective: BaseModel, in_file: BaseModel, path: str = "", named: bool = False
) -> Iterator[tuple[str, BaseModel, BaseModel, bool]]:
    """(path, table, the same table as the file has it, whether it is one of a NAME table),
    for every table in use."""
    if path:
        yield path, effective, in_file, named
    for key in type(effective).model_fields:
        if key in own_keys(type(effective)):
            continue
        sub, read = getattr(effective, key), getattr(in_file, key)
        prefix = f"{path}.{key}" if path else key
        if isinstance(sub, BaseModel):
            yield from _tables(sub, read, prefix, named)
        else:
            for name in sub:
                yield from _tables(sub[name], read[name], f"{prefix}.{name}", True)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in inspect.cleandoc(text).splitlines()] if text else []
