"""The README stays true: every `esteira` command it shows (in code blocks and in the text)
is a command of the CLI, with options that command has, and every esteira.toml it shows is
a valid configuration. The commands themselves run in the suites of their areas."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest
import typer
from conftest import REPO

from esteira.cli import app
from esteira.config import Config

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.DOTALL)
INLINE = re.findall(r"(?<!`)`((?:\.venv/bin/)?esteira [^`]+)`", README)


def _commands() -> list[str]:
    """Each `esteira ...` invocation, from shell blocks (a line, or after `&&`) and from
    the text; placeholders in brackets or with `|` alternatives kept as they are."""
    found = []
    for language, body in BLOCKS:
        if language not in ("", "bash", "sh", "console"):
            continue
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            for part in line.split("&&"):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("esteira "):
                    found.append(part)
    found += [c.removeprefix(".venv/bin/") for c in INLINE]
    return sorted(set(found))


COMMANDS = _commands()


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The CLI command the words name, and the words after its name."""
    command = typer.main.get_command(app)
    rest = list(words)
    while rest and rest[0] in getattr(command, "commands", {}):
        command = command.commands[rest.pop(0)]
    return command, rest


def test_the_readme_shows_the_main_commands():
    assert len(COMMANDS) > 40, COMMANDS
    shown = {" ".join(c.split()[:2]) for c in COMMANDS}
    for name in ("esteira run", "esteira serve", "esteira ct", "esteira ci", "esteira cd",
                 "esteira predict", "esteira monitor", "esteira dashboard"):  # fmt: skip
        assert name in shown, name


@pytest.mark.parametrize("line", COMMANDS)
def test_each_command_in_the_readme_exists_with_its_options(line):
    words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
    command, rest = _resolve(words)
    assert not hasattr(command, "commands") or not rest or rest[0].startswith("-"), (
        f"{line!r}: '{rest[0] if rest else ''}' is not a command of "
        f"'esteira {' '.join(words[: len(words) - len(rest)])}'"
    )
    known = {name for p in command.params for name in [*p.opts, *p.secondary_opts]}
    used = {w.split("=")[0] for w in rest if w.startswith("-") and w not in ("-", "--")}
    assert used <= known | {"--help"}, f"{line!r}: no option {sorted(used - known)}"


@pytest.mark.parametrize("block", [b for lang, b in BLOCKS if lang == "toml"])
def test_each_esteira_toml_in_the_readme_is_valid(block):
    Config.model_validate(tomllib.loads(block))
