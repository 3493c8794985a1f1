"""The README stays true.

Every `esteira` command that it and docs/guide.md show (in code blocks and in the text) is a
command of the CLI, with options that command has; every esteira.toml they show is a valid
configuration; every section and key the README names is one of the config model, every
environment variable one esteira reads, and its layout names every module of the package.
And the README's walkthrough of a new project, level 0 to level 2, runs as written
(`test_the_walkthrough_runs_as_written`)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import tomllib
from typing import Any

import pytest
import typer
from conftest import REPO
from test_cli import ESTEIRA, _env

from esteira.cli import app
from esteira.config import ENV_VARIABLE, ENVIRONMENT, HOME_VARIABLE, Config
from esteira.config_schema import NAME, own_keys, sections

DOCS = {name: (REPO / name).read_text(encoding="utf-8") for name in ("README.md", "docs/guide.md")}
README = DOCS["README.md"]
FENCE = re.compile(r"```(\w*)\n(.*?)```", flags=re.DOTALL)
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?esteira [^`]+)`")


def _commands(text: str) -> list[str]:
    """Each `esteira ...` invocation, from shell blocks (a line, or after `&&`) and from
    the text; placeholders in brackets or with `|` alternatives kept as they are."""
    found = []
    for language, body in FENCE.findall(text):
        if language not in ("", "bash", "sh", "console"):
            continue
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            for part in line.split("&&"):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("esteira "):
                    found.append(part)
    found += [c.removeprefix(".venv/bin/") for c in INLINE.findall(text)]
    return sorted(set(found))


COMMANDS = {doc: _commands(text) for doc, text in DOCS.items()}


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The CLI command the words name, and the words after its name."""
    command = typer.main.get_command(app)
    rest = list(words)
    while rest and rest[0] in getattr(command, "commands", {}):
        command = command.commands[rest.pop(0)]
    return command, rest


def test_the_readme_shows_the_main_commands():
    assert len(COMMANDS["README.md"]) > 40, COMMANDS["README.md"]
    shown = {" ".join(c.split()[:2]) for c in COMMANDS["README.md"]}
    for name in ("esteira init", "esteira run", "esteira serve", "esteira monitor",
                 "esteira ct", "esteira ci", "esteira release", "esteira deploy", "esteira cd",
                 "esteira promote", "esteira maturity", "esteira dashboard", "esteira ui",
                 "esteira predict", "esteira export", "esteira demo"):  # fmt: skip
        assert name in shown, name


@pytest.mark.parametrize(
    ("doc", "line"), [(doc, line) for doc, lines in COMMANDS.items() for line in lines]
)
def test_each_command_shown_exists_with_its_options(doc, line):
    words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
    command, rest = _resolve(words)
    assert not hasattr(command, "commands") or not rest or rest[0].startswith("-"), (
        f"{doc}: {line!r}: '{rest[0] if rest else ''}' is not a command of "
        f"'esteira {' '.join(words[: len(words) - len(rest)])}'"
    )
    known = {name for p in command.params for name in [*p.opts, *p.secondary_opts]}
    used = {w.split("=")[0] for w in rest if w.startswith("-") and w not in ("-", "--")}
    assert used <= known | {"--help"}, f"{doc}: {line!r}: no option {sorted(used - known)}"


@pytest.mark.parametrize(
    ("doc", "block"),
    [(doc, b) for doc, text in DOCS.items() for lang, b in FENCE.findall(text) if lang == "toml"],
)
def test_each_esteira_toml_shown_is_valid(doc, block):
    Config.model_validate(tomllib.loads(block))


# -- what the README names: settings, environment variables, the package's layout ----------

SECTIONS = {s.path: s for s in sections(Config)}
_PATTERNS = [(re.compile(re.escape(p).replace(NAME, "[A-Za-z_]+") + r"$"), p) for p in SECTIONS]


def _section(path: str) -> tuple[str, list[str]] | None:
    """The config section a dotted path names (`ct.triggers`, `pipelines.train`), with the
    rest of the path when it goes into one of its keys (`pipelines.train.params`)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        for pattern, name in _PATTERNS:
            if pattern.match(head):
                return name, parts[cut:]
    return None


SETTINGS = sorted(set(re.findall(r"`\[([a-zA-Z_.]+)\](?: ([a-z_]+))?`", README)))


def test_the_readme_names_settings():
    assert len(SETTINGS) > 15, SETTINGS


@pytest.mark.parametrize(("path", "key"), SETTINGS)
def test_each_setting_the_readme_names_is_in_the_config_model(path, key):
    found = _section(path)
    assert found is not None, f"[{path}] is no section of esteira.toml ({', '.join(SECTIONS)})"
    name, rest = found
    keys = own_keys(SECTIONS[name].model)
    if rest:  # [pipelines.NAME.params], [ci.params.train]: a key holding a table
        assert rest[0] in keys, f"[{path}]: '{rest[0]}' is no key of [{name}] ({keys})"
    if key:
        assert key in keys, f"[{path}] {key}: no such key (keys: {keys})"


def test_each_environment_variable_the_readme_names_is_read_by_esteira():
    named = set(re.findall(r"\b((?:ESTEIRA|MLFLOW)_[A-Z_]+)\b", README))
    assert {"ESTEIRA_HOME", "ESTEIRA_ENV", "ESTEIRA_METADATA_URL", "ESTEIRA_LAKE"} <= named
    read = {*ENVIRONMENT.values(), HOME_VARIABLE, ENV_VARIABLE}
    files = [p for p in (REPO / "src" / "esteira").rglob("*") if p.suffix in (".py", ".yml")]
    source = "\n".join(p.read_text(encoding="utf-8") for p in files)  # code, CI templates
    unknown = [v for v in named if v not in read and not re.search(rf"\b{v}\b", source)]
    assert not unknown, f"the README names variables esteira does not read: {unknown}"


def test_the_layout_names_every_module_of_the_package():
    (layout,) = [b for lang, b in FENCE.findall(README) if b.startswith("src/esteira/")]
    package = REPO / "src" / "esteira"
    modules = [p.name + "/" for p in package.iterdir() if (p / "__init__.py").exists()]
    modules += [p.name for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
    missing = [m for m in modules if not re.search(rf"(?<![\w/]){re.escape(m)}", layout)]
    assert not missing, f"the README's layout leaves out {missing}"


# -- the walkthrough, run ------------------------------------------------------------------

WALKTHROUGH_HEADING = "## Your own project"
SERVERS = {"serve", "dashboard", "ui"}
"""Commands that serve until stopped: the walkthrough checks them with --help."""


def walkthrough(text: str = README) -> list[str]:
    """The command lines of the `bash` blocks of the README's "Your own project" section,
    in order (`sh` blocks there are shown, not run: they need a running service)."""
    start = text.index(WALKTHROUGH_HEADING)
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else None]
    lines: list[str] = []
    for language, body in FENCE.findall(section):
        if language != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


def _as_run(line: str) -> str:
    """The shell line the test runs for a README line: itself, or `--help` for a server."""
    words = shlex.split(line, comments=True)
    if words[:1] == ["esteira"] and len(words) > 1 and words[1] in SERVERS:
        return shlex.join([*words, "--help"])
    return line


def test_the_walkthrough_is_the_whole_level_0_to_2_chain():
    commands = [shlex.split(line, comments=True) for line in walkthrough()]
    firsts = [" ".join(w[:3]) if w[1:2] == ["ct"] else " ".join(w[:2]) for w in commands]
    order = ["esteira init", "esteira run", "esteira serve", "esteira ct trigger",
             "esteira ci", "esteira release", "esteira deploy", "esteira cd", "esteira promote",
             "esteira maturity"]  # fmt: skip
    positions = [firsts.index(name) for name in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    promote = commands[firsts.index("esteira promote")]
    assert {"--env", "prod", "--approve", "--reason"} <= set(promote), promote
    for name in SERVERS:
        assert f"esteira {name}" in firsts, f"the walkthrough shows no esteira {name}"


def _repo_files() -> set[str]:
    """What git sees in the repository, new and ignored files included (caches aside)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--ignored", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    caches = ("__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv", ".egg-info",
              "node_modules")  # fmt: skip
    return {line for line in done.stdout.splitlines() if not any(c in line for c in caches)}


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_the_walkthrough_runs_as_written(tmp_path, monkeypatch):
    """Each command line of the walkthrough, in order, in a new folder with a HOME of its
    own and every store in the project made there: each exits 0, and it ends with a
    champion in prod that came from staging, and every level 2 item of the scorecard met."""
    bin_dir, home, work = tmp_path / "bin", tmp_path / "home", tmp_path / "work"
    for folder in (bin_dir, home, work):
        folder.mkdir()
    wrapper = bin_dir / "esteira"  # `esteira` as the README writes it: this test's esteira
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(ESTEIRA)} "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in _env().items()
           if not k.startswith(("ESTEIRA_", "MLFLOW_", "XDG_", "GIT_"))}  # fmt: skip
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "HOME": str(home),
            "GIT_AUTHOR_NAME": "A User", "GIT_AUTHOR_EMAIL": "user@example.com",
            "GIT_COMMITTER_NAME": "A User", "GIT_COMMITTER_EMAIL": "user@example.com",
            "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
    for name in [k for k in os.environ if k.startswith(("ESTEIRA_", "MLFLOW_"))]:
        monkeypatch.delenv(name)  # this process reads the project's own stores too
    repo_before = _repo_files()

    cwd, timings = work, []
    for line in walkthrough():
        words = shlex.split(line, comments=True)
        if words[0] == "cd":
            (folder,) = words[1:]
            cwd = (cwd / folder).resolve()
            assert cwd.is_dir() and cwd.is_relative_to(tmp_path), f"{line}: no folder {cwd}"
            continue
        started, command = time.monotonic(), _as_run(line)
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=1200)  # fmt: skip
        timings.append((time.monotonic() - started, command))
        assert done.returncode == 0, (
            f"README line {line!r} exited {done.returncode} in {cwd}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    print("\n".join(f"{seconds:6.1f}s  {line}" for seconds, line in timings))

    from esteira.cicd.maturity import other_environments, score
    from esteira.project import open_project
    from esteira.registry import CHAMPION, COPIED_FROM_TAG, Registry

    root = cwd
    assert (root / "esteira.toml").exists() and root.is_relative_to(work)
    model = Config.model_validate(tomllib.loads((root / "esteira.toml").read_text())).ct.model
    staging = Registry(open_project(root, {ENV_VARIABLE: "staging"})).by_alias(model, CHAMPION)
    prod = Registry(open_project(root, {ENV_VARIABLE: "prod"})).by_alias(model, CHAMPION)
    assert staging is not None and prod is not None, "no champion in staging or prod"
    assert prod.tags[COPIED_FROM_TAG] == f"staging/{staging.version}"
    dev = open_project(root, {})
    card = score(dev, other_environments(dev))
    unmet = [i.name for i in card.items if i.level == 2 and not i.met]
    assert not unmet, f"level 2 items without evidence after the walkthrough: {unmet}"
    for store in ("", "environments/staging", "environments/prod"):  # every store in the project
        assert (root / ".esteira" / store / "esteira.db").exists(), store
    assert _repo_files() == repo_before, "the walkthrough wrote into the repository"
