"""Releases of a project's pipeline code, and which one each environment runs.

A release is an immutable, content-addressed copy of what a pipeline runs: the project's
source files and esteira.toml (and those of its `[project] paths`), with a manifest of the
packages installed when it was built, the git commit and the files that differed from it.
Building the same tree twice gives the same release. `deploy` makes a release the code an
environment runs; in environments that run releases (staging and prod by default),
`load_project` imports the deployed release, never the working tree, so what was tested in
staging is what prod runs.

Releases live in `<project>/.esteira/releases/<id>/` (shared by the environments: a release
is built once and deployed to each in turn); deployments live in each environment's
metadata store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as packages
from pathlib import Path
from typing import TYPE_CHECKING

from esteira.config import CONFIG_FILE
from esteira.errors import ConfigError, EsteiraError, NotFound
from esteira.provenance import executor, git_commit, held

if TYPE_CHECKING:
    from esteira.config import Settings
    from esteira.metadata import Deployment, MetadataStore

SOURCE_SUFFIXES = {".py", ".toml", ".sql", ".json", ".yaml", ".yml"}
SKIPPED_FOLDERS = {"__pycache__", "tests", "node_modules"}
MANIFEST = "release.json"


class ReleaseError(EsteiraError):
    """A release cannot be built or deployed as asked."""


@dataclass(frozen=True)
class Release:
    id: str
    created_at: str
    created_by: str
    project: str
    root: str
    """Where the project's own folder is inside the release's `code/` (its paths beside)."""
    git_commit: str
    dirty_files: list[str]
    packages: list[str]
    files: dict[str, str]
    """path inside `code/` -> sha256 of its content"""

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_files)


def releases_folder(settings: Settings) -> Path:
    return settings.homes / "releases"  # built once, deployed to any environment


def build(settings: Settings) -> tuple[Release, Path]:
    """Build the release of the project as it is on disk (or find the identical one)."""
    base = _common_base([settings.root, *settings.paths])
    files = {
        path.relative_to(base).as_posix(): path
        for folder in [settings.root, *settings.paths]
        for path in _source_files(folder)
    }
    digests = {name: _sha256(path) for name, path in sorted(files.items())}
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in packages.distributions())
    content = json.dumps({"files": digests, "packages": installed}, sort_keys=True)
    release_id = hashlib.sha256(content.encode()).hexdigest()[:16]
    target = releases_folder(settings) / release_id
    if (target / MANIFEST).exists():
        os.utime(target / MANIFEST)  # built again: the newest, for `esteira deploy` without an id
        return load(settings, release_id), target
    release = Release(
        id=release_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=executor(),
        project=settings.name,
        root=settings.root.relative_to(base).as_posix(),
        git_commit=git_commit(settings.root).removesuffix("-dirty"),
        dirty_files=_dirty_files([settings.root, *settings.paths]),
        packages=installed,
        files=digests,
    )
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        for name, path in files.items():
            copy = tmp / "code" / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        (tmp / MANIFEST).write_text(json.dumps(asdict(release), indent=2), encoding="utf-8")
        os.replace(tmp, target)  # whole or not at all
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / MANIFEST).exists():
            raise
    return release, target


def load(settings: Settings, release_id: str) -> Release:
    """The release whose id is or starts with `release_id`."""
    folder = releases_folder(settings)
    known = sorted(p.name for p in folder.glob("*") if (p / MANIFEST).exists())
    found = [r for r in known if r.startswith(release_id)] if release_id else []
    if len(found) != 1:
        listed = ", ".join(known) or "none yet: esteira release"
        what = "matches several releases" if found else "is no release of this project"
        raise NotFound(f"'{release_id}' {what} (releases: {listed})")
    raw = json.loads((folder / found[0] / MANIFEST).read_text(encoding="utf-8"))
    return Release(**raw)


def newest(settings: Settings) -> str:
    """The id of the release built last (or built again: the same tree gives the same one)."""
    built = sorted(releases_folder(settings).glob(f"*/{MANIFEST}"), key=lambda f: f.stat().st_mtime)
    if not built:
        raise NotFound("the project has no release yet: esteira release")
    return built[-1].parent.name


def code_root(settings: Settings, release: Release) -> Path:
    """The project's folder inside the release: what `load_project` imports from."""
    return (releases_folder(settings) / release.id / "code" / release.root).resolve()


def deploy(settings: Settings, store: MetadataStore, release_id: str, reason: str) -> Deployment:
    """Make a release the code `settings.env` runs. Where promotion needs approval (prod),
    a release built from a tree that differed from its commit is refused."""

    release = load(settings, release_id)
    if settings.environment.approval and release.dirty:
        files = ", ".join(release.dirty_files[:8])
        raise ReleaseError(
            f"release {release.id} was built from uncommitted changes ({files}); {settings.env} "
            "runs only committed code: commit, then esteira release again"
        )
    return _record(store, settings.env, release.id, "deploy", reason)


def rollback(settings: Settings, store: MetadataStore, reason: str) -> Deployment:
    """Deploy again the release `settings.env` ran before the current one."""
    stack = held(store.deployments(settings.env), lambda d: d.release)
    if len(stack) < 2:
        raise ReleaseError(f"{settings.env} has no earlier release to go back to")
    return _record(store, settings.env, stack[-2], "rollback", reason)


def active(store: MetadataStore, environment: str) -> str | None:
    """The id of the release `environment` runs, if any was deployed."""
    stack = held(store.deployments(environment), lambda d: d.release)
    return stack[-1] if stack else None


def _record(store: MetadataStore, env: str, release: str, action: str, reason: str) -> Deployment:
    from esteira.metadata import Deployment

    if not reason.strip():
        raise ReleaseError(f"say why you {action} (--reason)")
    record = Deployment(environment=env, release=release, action=action, actor=executor(),
                        reason=reason)  # fmt: skip
    store.add(record)
    return record


def _source_files(folder: Path) -> list[Path]:
    return [
        p for p in sorted(folder.rglob("*")) if p.is_file() and _is_source(p.relative_to(folder))
    ]


def _common_base(folders: list[Path]) -> Path:
    """The folder above all of them: the release keeps their names and relative places, so
    the project's name (its folder's, by default) and its `paths` read the same."""
    return Path(os.path.commonpath([str(f) for f in folders])).parent


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dirty_files(folders: list[Path]) -> list[str]:
    """Source files under `folders` that differ from the git commit: changed, deleted or
    not yet tracked (what git ignores, and the stores, do not count)."""
    dirty: list[str] = []
    for folder in folders:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), "ls-files", "--modified", "--deleted", "--others",
                 "--exclude-standard"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            dirty += [line for line in done.stdout.splitlines() if _is_source(Path(line))]
    return sorted(set(dirty))


def _is_source(relative: Path) -> bool:
    if any(p.startswith(".") or p in SKIPPED_FOLDERS for p in relative.parts):
        return False
    return relative.suffix in SOURCE_SUFFIXES or relative.name == CONFIG_FILE


def require_active(settings: Settings, store: MetadataStore) -> Release:
    """The release `settings.env` runs; an environment that runs releases has one."""
    found = active(store, settings.env)
    if found is None:
        raise ConfigError(
            f"{settings.env} runs released code and none is deployed: esteira release, then "
            f"esteira deploy RELEASE --env {settings.env}"
        )
    return load(settings, found)
