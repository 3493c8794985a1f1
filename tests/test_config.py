from __future__ import annotations

import re
from pathlib import Path

import pytest

from esteira import load_project
from esteira.config import load_settings
from esteira.errors import ConfigError


def test_laptop_defaults(tmp_path: Path):
    s = load_settings(tmp_path, environ={})
    home = tmp_path.resolve() / ".esteira"
    assert s.home == home
    assert s.tracking_uri == f"sqlite:///{home / 'mlflow.db'}" == s.registry_uri
    assert s.metadata_url == f"sqlite:///{home / 'esteira.db'}"
    assert s.lake_path == home / "lake"
    assert s.experiment == s.name == tmp_path.name


def test_file_then_environment(tmp_path: Path):
    (tmp_path / "esteira.toml").write_text(
        '[project]\nname = "demo"\n[tracking]\nexperiment = "exp"\n[lake]\npath = "data/lake"\n'
        '[pipelines.train.params]\nend = "2013-04"\n'
    )
    s = load_settings(tmp_path, environ={})
    assert (s.name, s.experiment, s.lake_path) == ("demo", "exp", tmp_path.resolve() / "data/lake")
    assert s.pipeline_params == {"train": {"end": "2013-04"}}
    env = {"ESTEIRA_HOME": str(tmp_path / "elsewhere"), "MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    s = load_settings(tmp_path, environ=env)
    assert s.home == (tmp_path / "elsewhere").resolve()
    assert s.tracking_uri == "http://mlflow:5000" == s.registry_uri
    assert s.metadata_url.endswith("elsewhere/esteira.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tracking]\nexperimnt = 'x'\n", "'tracking.experimnt': unknown key; did you mean "
         "'tracking.experiment'? ([tracking] has: uri, registry_uri, experiment)"),
        ("[gates]\ntreshold = 1\n",
         "'gates.treshold': unknown key; did you mean 'gates.thresholds'?"),
        ("[gate]\nmetric = 'rmse'\n", "'gate': unknown section; did you mean 'gates'?"),
        ("[ct.triggers]\nnew_daat = true\n", "'ct.triggers.new_daat': unknown key; did you mean "
         "'ct.triggers.new_data'?"),
        ("[pipelines.train.param]\nend = 3\n", "'pipelines.train.param': unknown section; did "
         "you mean 'pipelines.train.params'? ([pipelines.train] has: params)"),
        ("[validation.columns.temp]\nmax_psy = 1\n", "'validation.columns.temp.max_psy': unknown "
         "key; did you mean 'validation.columns.temp.max_psi'?"),
        ("[ct]\nsegment = 'origin'\n", "'ct.segment': unknown key; it belongs in [gates]"),
        ("name = 'demo'\n", "'name': key outside any section; it belongs in [project]"),
        ("[project]\nmodules = 'pipelines'\n",
         "'project.modules': expected a list of strings, got 'pipelines'"),
        ("[project]\nmodules = ['a', 2]\n", "'project.modules': expected a list of strings, got "
         "['a', 2]"),
        ("[gates]\ntolerance = 'small'\n", "'gates.tolerance': expected a number, got 'small'"),
        ("[gates]\nthresholds = { rmse = 'low' }\n",
         "'gates.thresholds.rmse': expected a number, got 'low'"),
        ("[gates]\nmin_segment_rows = 2.5\n",
         "'gates.min_segment_rows': expected a whole number, got 2.5"),
        ("[validation]\nblock_on_drift = 'often'\n",
         "'validation.block_on_drift': expected true or false, got 'often'"),
        ("[validation]\nextra_columns = 'drop'\n", "'validation.extra_columns': expected one of "
         '"ignore", "warn", "error", got \'drop\''),
        ("[model]\nthreshold = 1.5\n", "'model.threshold': expected a number > 0 and < 1, got 1.5"),
        ("gates = 3\n", "'gates': expected a table, got 3"),
        ("[project\n", "is not valid TOML"),
    ],
)  # fmt: skip
def test_invalid_config_names_the_key_and_the_file(tmp_path: Path, text: str, message: str):
    (tmp_path / "esteira.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, environ={})
    assert message in str(e.value)
    assert str(tmp_path / "esteira.toml") in str(e.value)


def test_missing_folder_and_missing_module(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope", environ={})
    (tmp_path / "esteira.toml").write_text("[project]\nmodules = ['my_flows']\n")
    with pytest.raises(ConfigError, match="cannot import pipeline module 'my_flows'"):
        load_project(tmp_path)


def test_a_second_project_in_the_same_process_keeps_its_own_stores(tmp_path: Path):
    """MLflow writes MLFLOW_TRACKING_URI into os.environ when its URI is set; esteira must
    not let one project's store become the next one's 'environment override'."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    load_settings(first, environ={})  # settings alone touch nothing
    from esteira.project import open_project

    open_project(first).tracker.activate(experiment=True)
    assert not any(k.startswith("MLFLOW_") for k in __import__("os").environ)
    assert str(second.resolve()) in load_settings(second).tracking_uri


def test_every_setting_is_documented():
    from esteira.config import Config
    from esteira.config_schema import sections

    for section in sections(Config):
        assert section.doc, f"[{section.path}] needs a docstring"
        for key in section.keys:
            field = section.model.model_fields[key]
            assert field.description, f"[{section.path}] {key} needs a docstring under it"


def test_the_configuration_reference_is_current():
    from esteira.config_reference import REGENERATE, reference_markdown

    written = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    assert written == reference_markdown(), f"docs/configuration.md is stale; run: {REGENERATE}"


def test_defaults_are_a_commented_esteira_toml_that_means_the_defaults():
    import tomllib

    from esteira.config import Config
    from esteira.config_reference import defaults_toml

    text = defaults_toml()
    sections = ("project", "tracking", "metadata", "lake", "model", "runtime", "serving")
    sections += ("monitoring",)
    sections += ("validation", "gates", "ci", "cd")
    assert tomllib.loads(text) == {s: {} for s in sections} | {"ct": {"triggers": {}}}
    # Uncommented, every key outside the NAME templates reads back as the default.
    kept, template = [], False
    for line in text.splitlines():
        if line.startswith(("[", "# [")):
            template = line.startswith("# [")
            kept.append("" if template else line)
        elif not template and re.match(r"# \w+ = (?!\.\.\.)", line):
            kept.append(line.removeprefix("# "))
    uncommented = Config.model_validate(tomllib.loads("\n".join(kept)))
    assert uncommented.model_dump() == Config().model_dump()
    assert "# segment = ...   (unset; a string)" in text
    assert "# [validation.columns.NAME]" in text and "# max_psi = 0.25" in text


def test_effective_settings_say_where_each_value_came_from(tmp_path: Path):
    from esteira.config_reference import effective_settings

    (tmp_path / "esteira.toml").write_text(
        '[tracking]\nexperiment = "exp"\n[gates]\ntolerance = 0.01\n'
        "[validation.columns.temp]\nmax_psi = 0.5\n[pipelines.train.params]\nend = 3\n"
    )
    env = {"ESTEIRA_LAKE": str(tmp_path / "lake"), "ESTEIRA_HOME": str(tmp_path / "home")}
    effective = effective_settings(tmp_path, env)
    found = {v.key: (v.value, v.source) for v in effective.values}
    assert found["tracking.experiment"] == ("exp", "esteira.toml")
    assert found["lake.path"] == (str(tmp_path / "lake"), "ESTEIRA_LAKE")
    home = (tmp_path / "home").resolve()
    assert found["tracking.uri"] == (f"sqlite:///{home / 'mlflow.db'}", "default")
    assert found["gates.tolerance"] == (0.01, "esteira.toml")
    assert found["gates.min_segment_rows"] == (200, "default")
    assert found["ct.triggers.new_data"] == (False, "default")
    assert found["validation.columns.temp.max_psi"] == (0.5, "esteira.toml")
    assert "validation.columns.temp.max_js" not in found  # it comes from [validation]
    assert found["pipelines.train.params"] == ({"end": 3}, "esteira.toml")
    assert (effective.home, effective.home_source) == (home, "ESTEIRA_HOME")


def test_config_command(tmp_path: Path):
    from typer.testing import CliRunner

    from esteira.cli import app

    (tmp_path / "esteira.toml").write_text('[ct]\nmodel = "toy"\n')
    runner = CliRunner()
    shown = runner.invoke(app, ["config", "-p", str(tmp_path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert re.search(r'ct\.model\s+│ "toy"\s+│ esteira\.toml', shown.output), shown.output
    assert re.search(r"gates\.segment\s+│ unset\s+│ default", shown.output)
    defaults = runner.invoke(app, ["config", "--defaults"])
    assert defaults.output.startswith("# esteira.toml: every key with its default.")
    (tmp_path / "esteira.toml").write_text("[ct]\nmodle = 'toy'\n")
    refused = runner.invoke(app, ["config", "-p", str(tmp_path)])
    assert refused.exit_code == 1 and "did you mean 'ct.model'?" in str(refused.exception)
