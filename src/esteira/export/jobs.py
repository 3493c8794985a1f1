"""What a project asks an orchestrator to run: its jobs, each one `esteira` command, with
its schedule and the parameters a person gives when running it by hand.

Continuous training becomes a scheduled check (`esteira ct start --once`): the controller
decides, from its own state, whether a trigger fires, so a check that finds nothing to do
costs one look at the metadata, and two checks at once still make one run (its lock). With
only a cron trigger, the check runs on that cron; with a data trigger (new data, drift,
performance), hourly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from esteira.config import EnvironmentSection, Settings
from esteira.errors import ConfigError

HOURLY = "0 * * * *"
DAILY = "0 6 * * *"


@dataclass(frozen=True)
class Job:
    key: str
    """Short name, unique in the project: ct, cd, batch_inference, monitoring."""
    title: str
    command: list[str]
    """The `esteira` arguments; `{name}` stands for a parameter."""
    schedule: str | None = None
    """A cron expression (minute hour day month weekday); None: run on demand."""
    parameters: dict[str, str] = field(default_factory=dict)
    """Parameter -> its default, for a person or another job to set."""
    environments: tuple[str, ...] = ()
    """The environments it runs in; empty: every one."""


def project_jobs(settings: Settings, environments: Mapping[str, EnvironmentSection]) -> list[Job]:
    """The jobs of a project whose model is `[ct] model`, in its `environments`
    (`environments_of`)."""
    model = settings.ct.model
    if not model:
        raise ConfigError(
            f"set [ct] model (and pipeline) in {settings.root / 'esteira.toml'}: the exported "
            "jobs train, monitor and score that model"
        )
    triggers = settings.ct.triggers
    data_triggers = (
        triggers.new_data
        or triggers.drift_share is not None
        or (triggers.performance_below is not None)
    )
    jobs = [
        Job("ct", f"{model}: continuous training (checks its triggers, retrains if one fires)",
            ["ct", "start", "--once"],
            HOURLY if data_triggers or not triggers.cron else triggers.cron),
        Job("monitoring", f"{model}: drift and performance of the served predictions",
            ["monitor", "--since", "{since}"], DAILY, {"since": "24h"}),
        Job("batch_inference", f"{model}: score a lake table with the champion",
            ["predict", "--input", "{input_table}", "--output", "{output_table}"], None,
            {"input_table": "", "output_table": f"predictions_{model}_batch"}),
    ]  # fmt: skip
    gated = [name for name, env in environments.items() if env.promotion == "cd"]
    if gated:
        jobs.append(Job("cd", f"{model}: the CD gates of the deployed release",
                        ["cd"], None, environments=tuple(gated)))  # fmt: skip
    return jobs


def parameter(argument: str) -> str | None:
    """The job parameter a command's argument stands for (`{name}`), if any."""
    return argument[1:-1] if argument.startswith("{") and argument.endswith("}") else None


def quartz(cron: str) -> str:
    """A five-field cron expression in Quartz's syntax (Databricks): seconds first, weekdays
    1-7 from Sunday, and `?` for whichever of day-of-month and weekday is not given."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"cron {cron!r} needs 5 fields: minute hour day month weekday")
    minute, hour, day, month, weekday = fields
    if weekday == "*":
        weekday = "?"
    else:
        weekday = _shift_weekdays(weekday)
        day = "?" if day == "*" else day
    return f"0 {minute} {hour} {day} {month} {weekday}"


def _shift_weekdays(field_: str) -> str:
    """Cron's 0-6 (or 7) from Sunday to Quartz's 1-7 from Sunday; names stay."""

    def one(token: str) -> str:
        return str(int(token) % 7 + 1) if token.isdigit() else token

    parts = []
    for item in field_.split(","):
        head, _, step = item.partition("/")
        head = "-".join(one(t) for t in head.split("-"))
        parts.append(f"{head}/{step}" if step else head)
    return ",".join(parts)
