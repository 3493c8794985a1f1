"""Environments: dev, staging and prod each keep their own stores; `--env` or ESTEIRA_ENV
picks one (dev by default, so a project without any of this works as before); prod's
champion moves only with a person's approval."""

from __future__ import annotations

import pytest
from test_cli import esteira
from test_steps import PIPELINE

from esteira import load_project
from esteira.config import load_settings, store_variables
from esteira.errors import ConfigError
from esteira.pipelines.runner import run_pipeline
from esteira.project import open_project
from esteira.registry import CHALLENGER, CHAMPION, PromotionError, Registry
from esteira.releases import build, deploy


def release_to(root, env: str) -> None:
    """Staging and prod run only deployed releases of the code."""
    target = open_project(root, {"ESTEIRA_ENV": env})
    deploy(target.settings, target.metadata, build(load_settings(root, {}))[0].id, "test")


def test_each_environment_has_its_own_stores(write_project):
    root = write_project(PIPELINE, toml='[environments.qa]\nhome = "qa-stores"\n')
    dev = load_settings(root, {})
    assert (dev.env, dev.home) == ("dev", root / ".esteira")  # as before environments
    staging = load_settings(root, {"ESTEIRA_ENV": "staging"})
    assert staging.home == root / ".esteira" / "environments" / "staging"
    assert staging.tracking_uri.endswith("environments/staging/mlflow.db")
    assert staging.environment.promotion == "cd"
    prod = load_settings(root, {"ESTEIRA_ENV": "prod"}).environment
    assert (prod.promotion, prod.promote_from, prod.cd_passes) == ("approval", "staging", 1)
    assert load_settings(root, {"ESTEIRA_ENV": "qa"}).home == root / "qa-stores"
    with pytest.raises(ConfigError, match=r"no environment 'uat' .* \(environments: dev, "):
        load_settings(root, {"ESTEIRA_ENV": "uat"})

    release_to(root, "staging")
    run_pipeline(load_project(root, {"ESTEIRA_ENV": "staging"}), "flow")
    staged = Registry(load_project(root, {"ESTEIRA_ENV": "staging"}))
    assert staged.by_alias("toy", CHALLENGER) is not None  # champion: after esteira cd
    assert load_project(root, {}).metadata.runs() == []  # dev saw nothing of it
    listed = esteira("runs", "-p", str(root), "--env", "staging")
    assert listed.returncode == 0 and "flow" in listed.stdout, listed.stderr
    unknown = esteira("runs", "-p", str(root), "--env", "uat")
    assert unknown.returncode != 0 and "no environment 'uat'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_esteira_home_moves_every_environment_and_none_mixes(write_project, tmp_path):
    root = write_project(PIPELINE, toml='[environments.qa]\nhome = "qa-stores"\n')
    moved = {"ESTEIRA_HOME": str(tmp_path / "elsewhere")}
    dev = load_settings(root, moved)
    staging = load_settings(root, moved | {"ESTEIRA_ENV": "staging"})
    assert dev.home == dev.homes == tmp_path / "elsewhere"
    assert staging.home == tmp_path / "elsewhere" / "environments" / "staging"
    assert staging.metadata_url.endswith("elsewhere/environments/staging/esteira.db")
    assert load_settings(root, moved | {"ESTEIRA_ENV": "qa"}).home == root / "qa-stores"
    # A release is built once for every environment, in the moved home too.
    target = open_project(root, moved | {"ESTEIRA_ENV": "staging"})
    deploy(target.settings, target.metadata, build(load_settings(root, moved))[0].id, "test")
    assert list((tmp_path / "elsewhere" / "releases").glob("*/release.json"))
    run_pipeline(load_project(root, moved | {"ESTEIRA_ENV": "staging"}), "flow")
    assert load_project(root, moved).metadata.runs() == []  # dev saw nothing of it
    assert not (root / ".esteira").exists()  # nothing in the project's own homes
    # A child process given these stores' variables resolves the same stores.
    again = load_settings(root, store_variables(staging))
    assert (again.home, again.metadata_url) == (staging.home, staging.metadata_url)


def test_prod_champion_moves_only_with_approval(write_project):
    # This prod trains its own versions rather than taking staging's (tests/test_cd.py).
    root = write_project(PIPELINE, toml='[environments.prod]\npromotion = "approval"\n'
                         'releases = true\npromote_from = ""\n')  # fmt: skip
    release_to(root, "prod")  # not a git repository: no uncommitted changes to refuse
    prod = load_project(root, {"ESTEIRA_ENV": "prod"})
    decision = run_pipeline(prod, "flow").output("decision")
    assert decision["passed"] and decision["awaiting"] == "approval"
    registry = Registry(prod)
    assert registry.by_alias("toy", CHAMPION) is None
    assert registry.by_alias("toy", CHALLENGER).version == "1"
    with pytest.raises(PromotionError, match="--env prod --approve"):
        registry.promote("toy", "1", "looks fine")

    refused = esteira("promote", "toy", "1", "--reason", "ok", "-p", str(root), "--env", "prod")
    assert refused.returncode != 0 and "--approve" in refused.stderr
    approved = esteira(
        "promote", "toy", "1", "--reason", "reviewed the gates", "--approve", "-p", str(root),
        "--env", "prod",
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert Registry(prod).by_alias("toy", CHAMPION).version == "1"
    (change,) = Registry(prod).history("toy")
    assert (change.action, change.reason) == ("approve", "reviewed the gates") and change.actor
