"""Every module of esteira imports alone, in a fresh interpreter: no module depends on
another having been imported first (import cycles show up here as ImportError). The layers
themselves are checked by `lint-imports` in `make test`."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import esteira

PACKAGE = Path(esteira.__file__).parent


def modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":  # runs the command line when imported
            continue
        if path.parent.name in ("migrations", "versions") and path.name != "__init__.py":
            continue  # Alembic's scripts: Alembic runs them, nothing imports them
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def import_alone(module: str) -> str | None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    return None if done.returncode == 0 else f"{module}: {done.stderr.strip().splitlines()[-1]}"


def test_every_module_imports_alone():
    names = modules()
    assert "esteira.models" in names and "esteira.pipelines.runner" in names
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(import_alone, names) if f]
    assert not failures, failures
