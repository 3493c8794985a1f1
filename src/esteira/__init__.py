"""esteira: take a tabular ML use case from notebooks to continuous training and CI/CD.

    from esteira import step, pipeline, Context, load_project, run_pipeline

Names are imported on first use so that `import esteira` (and `esteira --help`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "step": "esteira.pipelines.step",
    "Step": "esteira.pipelines.step",
    "pipeline": "esteira.pipelines.dag",
    "Pipeline": "esteira.pipelines.dag",
    "Context": "esteira.pipelines.context",
    "load_project": "esteira.project",
    "run_pipeline": "esteira.pipelines.runner",
    "Project": "esteira.project",
    "Lake": "esteira.lake",
    "EsteiraError": "esteira.errors",
}

__all__ = [
    "Context",
    "EsteiraError",
    "Lake",
    "Pipeline",
    "Project",
    "Step",
    "load_project",
    "pipeline",
    "run_pipeline",
    "step",
]

if TYPE_CHECKING:
    from esteira.errors import EsteiraError
    from esteira.lake import Lake
    from esteira.pipelines.context import Context
    from esteira.pipelines.dag import Pipeline, pipeline
    from esteira.pipelines.runner import run_pipeline
    from esteira.pipelines.step import Step, step
    from esteira.project import Project, load_project


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'esteira' has no attribute {name!r}")
