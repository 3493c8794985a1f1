"""Content-addressed artifact store with atomic writes.

Each value is serialized into a temporary file (or folder) beside its final place, hashed,
then renamed to `objects/<hash>.<kind>`: a reader sees either a whole artifact or none, and
a process killed mid-write leaves only a `.tmp-<pid>-*` entry, which the next run removes
(`prune_temporary`).
DataFrames are stored as Parquet, JSON-able values as JSON, NumPy arrays as .npy and
scikit-learn models in MLflow's model format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from esteira.errors import ArtifactError

TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives and what it holds."""

    uri: str
    hash: str
    kind: str
    size: int

    @property
    def path(self) -> Path:
        return Path(unquote(urlparse(self.uri).path))

    def exists(self) -> bool:
        return self.path.exists()

    def intact(self) -> bool:
        """It exists with the size it was stored with: a cheap check, for cache hits (its
        content's hash is checked when it is loaded)."""
        return self.exists() and (not self.size or _size(self.path) == self.size)


def artifact_ref(record: Any) -> ArtifactRef:
    """The reference a metadata record of an artifact (a step's input or output) points at."""
    return ArtifactRef(record.uri, record.hash, record.kind, record.size)


class ArtifactStore:
    def __init__(
        self,
        root: Path,
        save_model: Callable[[Any, Path], None] | None = None,
        load_model: Callable[[Path], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self._save_model = save_model
        self._load_model = load_model

    def save(self, value: Any) -> ArtifactRef:
        """Serialize `value` atomically; identical content is stored once."""
        kind = kind_of(value)
        self.objects.mkdir(parents=True, exist_ok=True)
        tmp = self.objects / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            _WRITERS[kind](self, value, tmp)
            digest, size = _hash_path(tmp)
            final = self.objects / f"{digest[:32]}.{kind}"
            if final.exists():  # same content already stored
                _remove(tmp)
            else:
                _publish(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        return ArtifactRef(final.as_uri(), digest, kind, size)

    def find(self, digest: str, kind: str) -> ArtifactRef | None:
        """The stored artifact of `kind` whose content has this hash, if the store holds it
        (its content is checked when it is loaded)."""
        path = self.objects / f"{digest[:32]}.{kind}"
        if not path.exists():
            return None
        return ArtifactRef(path.as_uri(), digest, kind, _size(path))

    def load(self, ref: ArtifactRef) -> Any:
        """The stored value, once its content is checked against the hash it was stored
        with: a file changed on disk is never read as if it were the step's output."""
        if not ref.exists():
            raise ArtifactError(
                f"artifact {ref.uri} is missing (was the store pruned?); rerun with --no-cache"
            )
        if ref.hash and _hash_path(ref.path)[0] != ref.hash:
            raise ArtifactError(
                f"artifact {ref.path} is damaged: its content changed on disk since it was "
                "stored (its hash differs); delete it and rerun, and the step that made it "
                "runs again"
            )
        if ref.kind == "mlmodel":
            if self._load_model is None:
                raise ArtifactError(
                    "this artifact store cannot load models (no model reader given)"
                )
            return self._load_model(ref.path)
        return _READERS[ref.kind](ref.path)

    def prune_temporary(self, older_than_s: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes: those of processes that are gone (each
        is named with its writer's pid), and any older than `older_than_s`; returns how
        many were removed."""
        if not self.objects.exists():
            return 0
        cutoff = time.time() - older_than_s
        stale = [p for p in self.objects.glob(f"{TEMP_PREFIX}*")
                 if not _writer_alive(p.name) or p.stat().st_mtime < cutoff]  # fmt: skip
        for p in stale:
            _remove(p)
        return len(stale)

    def remove_all_but(self, keep: set[Path]) -> tuple[int, int]:
        """Delete every stored artifact not in `keep`; returns (count, bytes) removed."""
        removed = freed = 0
        if not self.objects.exists():
            return removed, freed
        for path in self.objects.iterdir():
            if path.name.startswith(TEMP_PREFIX) or path in keep:
                continue
            freed += _size(path)
            _remove(path)
            removed += 1
        return removed, freed

    # writers -------------------------------------------------------------------------

    def _write_parquet(self, df: Any, tmp: Path) -> None:
        with open(tmp, "wb") as f:
            df.to_parquet(f, index=not _has_default_index(df))
            _sync(f)

    def _write_json(self, value: Any, tmp: Path) -> None:
        try:
            text = json.dumps(value, sort_keys=True, default=_json_default)
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"step output is not JSON-able: {e}") from None
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            _sync(f)

    def _write_npy(self, value: Any, tmp: Path) -> None:
        import numpy as np

        with open(tmp, "wb") as f:
            np.save(f, value, allow_pickle=False)
            _sync(f)

    def _write_model(self, model: Any, tmp: Path) -> None:
        if self._save_model is None:
            raise ArtifactError("this artifact store cannot save models (no model writer given)")
        self._save_model(model, tmp)


def kind_of(value: Any) -> str:
    module = type(value).__module__
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return "parquet"
    if module.startswith("numpy") and type(value).__name__ == "ndarray":
        return "npy"
    if hasattr(value, "fit") and (hasattr(value, "predict") or hasattr(value, "transform")):
        return "mlmodel"
    if value is None or isinstance(value, dict | list | tuple | str | int | float | bool):
        return "json"
    raise ArtifactError(
        f"cannot store a step output of type {type(value).__module__}.{type(value).__name__}; "
        "return a pandas DataFrame, a NumPy array, a scikit-learn model or JSON-able data "
        "(dict, list, str, number)"
    )


def _json_default(value: Any) -> Any:
    """NumPy scalars and dates, which steps return all the time, as plain JSON."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _has_default_index(df: Any) -> bool:
    import pandas as pd

    index = df.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def _read_parquet(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_npy(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False)


_WRITERS = {
    "parquet": ArtifactStore._write_parquet,
    "json": ArtifactStore._write_json,
    "npy": ArtifactStore._write_npy,
    "mlmodel": ArtifactStore._write_model,
}
_READERS = {"parquet": _read_parquet, "json": _read_json, "npy": _read_npy}


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _hash_path(path: Path) -> tuple[str, int]:
    """sha256 of a file, or of a folder's relative paths and file contents."""
    h = hashlib.sha256()
    size = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    return h.hexdigest(), size


def _writer_alive(name: str) -> bool:
    """Whether the process that named this temporary entry still runs (on this host: the
    store is local). A name without a pid is an older esteira's: left to the age rule."""
    pid = name.removeprefix(TEMP_PREFIX).partition("-")[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _size(path: Path) -> int:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files if p.is_file())


def _publish(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():  # not a concurrent writer of the same content
            raise
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
