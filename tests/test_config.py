from __future__ import annotations

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
        ("[tracking]\nexperimnt = 'x'\n", r"'tracking.experimnt': unknown key"),
        ("[project]\nmodules = 'pipelines'\n", r"'project.modules': Input should be a valid list"),
        ("[project\n", "is not valid TOML"),
    ],
)
def test_invalid_config_names_the_key_and_the_file(tmp_path: Path, text: str, message: str):
    (tmp_path / "esteira.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_settings(tmp_path, environ={})
    assert str(tmp_path / "esteira.toml") in str(e.value)


def test_missing_folder_and_missing_module(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope", environ={})
    (tmp_path / "esteira.toml").write_text("[project]\nmodules = ['my_flows']\n")
    with pytest.raises(ConfigError, match="cannot import pipeline module 'my_flows'"):
        load_project(tmp_path)


def test_metadata_store_of_another_schema_version_is_refused(tmp_path: Path):
    from sqlalchemy import update

    from esteira.metadata import MetadataSchemaError, MetadataStore, SchemaInfo

    url = f"sqlite:///{tmp_path / 'esteira.db'}"
    with MetadataStore(url).session() as s:
        s.execute(update(SchemaInfo).values(version=99))
    with pytest.raises(MetadataSchemaError, match="schema version 99"):
        MetadataStore(url)


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
