"""Releases: content-addressed copies of the pipeline's code that staging and prod run,
whatever the working tree becomes; a release with uncommitted changes never reaches prod."""

from __future__ import annotations

import subprocess

import pytest
from test_cli import esteira

from esteira import load_project
from esteira.config import load_settings
from esteira.errors import ConfigError, NotFound
from esteira.pipelines.runner import run_pipeline
from esteira.project import open_project
from esteira.releases import ReleaseError, active, build, deploy, load, rollback

CODE = """
from esteira import pipeline, step

@step
def answer() -> dict:
    return {"value": VALUE}

flow = pipeline("flow", [answer])
"""


def project(write_project, value: int):
    return write_project(CODE.replace("VALUE", str(value)))


def test_staging_runs_the_deployed_release_not_the_working_tree(write_project):
    root = project(write_project, 1)
    staging = {"ESTEIRA_ENV": "staging"}
    with pytest.raises(ConfigError, match="none is deployed: esteira release"):
        load_project(root, staging)

    first, folder = build(load_settings(root, {}))
    assert build(load_settings(root, {}))[0].id == first.id  # the same tree, the same release
    assert (folder / "code" / root.name / "pipelines.py").exists()
    assert any(p.startswith("esteira-mlops==") for p in first.packages)
    deployed = esteira("deploy", first.id[:6], "--env", "staging", "-p", str(root))
    assert deployed.returncode == 0, deployed.stderr

    project(write_project, 2)  # the working tree moves on
    assert run_pipeline(load_project(root, staging), "flow").output("answer") == {"value": 1}
    assert run_pipeline(load_project(root, {}), "flow").output("answer") == {"value": 2}
    assert load_project(root, staging).settings.release == first.id

    second, _ = build(load_settings(root, {}))
    assert second.id != first.id
    settings = load_settings(root, staging)
    store = open_project(root, staging).metadata
    deploy(settings, store, second.id, "next")
    assert run_pipeline(load_project(root, staging), "flow").output("answer") == {"value": 2}
    rollback(settings, store, "second one is wrong")
    assert active(store, "staging") == first.id
    with pytest.raises(NotFound, match="is no release of this project"):
        load(settings, "feedbeef")


def test_a_release_with_uncommitted_changes_is_refused_for_prod(write_project):
    root = project(write_project, 1)
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    clean, _ = build(load_settings(root, {}))
    assert not clean.dirty and len(clean.git_commit) == 40

    project(write_project, 3)
    dirty, _ = build(load_settings(root, {}))
    assert dirty.dirty_files == ["pipelines.py"]
    prod = esteira("deploy", dirty.id, "--env", "prod", "-p", str(root))
    assert prod.returncode != 0 and "uncommitted changes (pipelines.py)" in prod.stderr
    with pytest.raises(ReleaseError):
        prod_project = open_project(root, {"ESTEIRA_ENV": "prod"})
        deploy(prod_project.settings, prod_project.metadata, dirty.id, "try")
    assert esteira("deploy", dirty.id, "--env", "staging", "-p", str(root)).returncode == 0
    assert esteira("deploy", clean.id, "--env", "prod", "-p", str(root)).returncode == 0
    listed = esteira("releases", "--env", "prod", "-p", str(root))
    assert clean.id in listed.stdout and "deploy" in listed.stdout
