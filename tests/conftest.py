from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


STORE_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "ESTEIRA_HOME",
    "ESTEIRA_METADATA_URL",
    "ESTEIRA_LAKE",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
)
"""What a shell may export that would point a test's stores elsewhere."""


def _own_stores(request: pytest.FixtureRequest) -> dict[str, str]:
    """The store variables a test sets: none on SQLite, new databases on PostgreSQL."""
    if BACKEND != "postgres":
        return {}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {"ESTEIRA_METADATA_URL": server.new_database(),
            "MLFLOW_TRACKING_URI": server.new_database()}  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Every test uses its project's own embedded stores, whatever the shell exported (on
    PostgreSQL with ESTEIRA_TEST_BACKEND=postgres: new databases for the test)."""
    for var in STORE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    for var, value in _own_stores(request).items():
        monkeypatch.setenv(var, value)


@dataclass(frozen=True)
class FastDemo:
    """`esteira demo --fast` run once in a copy of the reference project, then again."""

    project: Path
    home: Path
    first: subprocess.CompletedProcess[str]
    first_state: dict[str, Any]
    """demo.json after the first run."""
    again: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def fast_demo(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
              ) -> FastDemo:  # fmt: skip
    """The fast demo as a new user runs it, twice (minutes: shared by the tests that read it)."""
    root = tmp_path_factory.mktemp("demo")
    project = root / "flight_delays"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".esteira", "__pycache__"))
    home = root / "demo home"
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    env |= _own_stores(request) | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "esteira.cli", "demo", "-p", str(project), "--home",
               str(home), "--fast"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((home / "demo.json").read_text())
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    return FastDemo(project, home, first, state, again)


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
