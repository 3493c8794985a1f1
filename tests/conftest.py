from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from postgres import PostgresServer
from s3 import S3Server

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "flight_delays"


BACKEND = os.environ.get("ESTEIRA_TEST_BACKEND", "sqlite")
"""`postgres`: the metadata store and MLflow's tracking and registry of every test live in
databases of their own on a real PostgreSQL server (`make test` runs the metadata, registry,
CT and concurrency tests so too)."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_lake(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a new lake on the local S3 server, its settings in the environment."""
    for name, value in s3_server.environment.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.new_bucket()}/lake"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Every test uses its project's own embedded stores, whatever the shell exported (on
    PostgreSQL with ESTEIRA_TEST_BACKEND=postgres: new databases for the test)."""
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
        "ESTEIRA_HOME",
        "ESTEIRA_METADATA_URL",
        "ESTEIRA_LAKE",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    if BACKEND == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("ESTEIRA_METADATA_URL", server.new_database())
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.new_database())


@pytest.fixture
def write_project(tmp_path: Path) -> Callable[..., Path]:
    """Write (or rewrite) a project: `pipelines.py` from `code`, `esteira.toml` from `toml`."""

    def write(code: str, toml: str = "", name: str = "proj") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        (root / "pipelines.py").write_text(textwrap.dedent(code))
        (root / "esteira.toml").write_text(textwrap.dedent(toml))
        return root

    return write


@pytest.fixture
def flight_project(tmp_path: Path) -> Path:
    """A private copy of the reference project, so its stores live in tmp."""
    root = tmp_path / "flight_delays"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    return root


def calls(root: Path) -> list[str]:
    """Steps write their name to calls.txt when they execute (not when cached)."""
    path = root / "calls.txt"
    return path.read_text().split() if path.exists() else []


def reset_calls(root: Path) -> None:
    (root / "calls.txt").unlink(missing_ok=True)
