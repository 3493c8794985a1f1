"""Errors a user can cause. Each message says what is wrong and what to do."""

from __future__ import annotations


class EsteiraError(Exception):
    """Base of every error esteira reports to a user; the CLI prints it without a traceback."""


class ConfigError(EsteiraError):
    """esteira.toml or an environment override is invalid."""


class PipelineDefinitionError(EsteiraError):
    """A pipeline cannot be built: unknown input, duplicate output, cycle, ..."""


class StepFailed(EsteiraError):
    """A step raised; the run is recorded as failed and a rerun resumes from this step."""

    def __init__(self, step: str, run_id: str, error: BaseException) -> None:
        self.step = step
        self.run_id = run_id
        self.error = error
        super().__init__(
            f"step '{step}' failed in run {run_id}: {type(error).__name__}: {error}\n"
            f"Completed steps are cached: fix the cause and rerun to resume from '{step}'."
        )


class ArtifactError(EsteiraError):
    """An artifact cannot be stored or loaded."""


class LakeError(EsteiraError):
    """A lake table is missing, a version does not exist, or a batch does not fit its table."""


class TrackingError(EsteiraError):
    """MLflow refused a run, a model or a registration."""


class NotFound(EsteiraError):
    """A run, step, pipeline or model that the user named does not exist."""


def first_line(error: BaseException | None) -> str:
    """What an error says, in one line (a driver's or a library's message can run to many);
    its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
