"""The `esteira` command as a user runs it: real processes, real exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_runner import PIPELINE

ESTEIRA = [sys.executable, "-m", "esteira.cli"]


def esteira(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ESTEIRA, *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=300
    )


def _env() -> dict[str, str]:
    """The test's own environment (conftest's: its stores, on PostgreSQL with that backend)."""
    import os

    return dict(os.environ) | {"COLUMNS": "200"}


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from esteira.cli import app; "
        "heavy = {'mlflow', 'pandas', 'sqlalchemy', 'deltalake', 'sklearn', 'pydantic'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = esteira("--help")
    assert help_text.returncode == 0
    for command in ("run", "runs", "show", "ui", "demo"):
        assert command in help_text.stdout
    assert "Example: esteira run train" in esteira("run", "--help").stdout


def test_help_shows_square_brackets_as_written():
    """Help is rich markup: an unescaped "[ct]" would vanish as a style tag."""
    import typer.main
    from rich.text import Text

    from esteira.cli import app

    def helps(command):
        yield command.help or ""
        yield from (getattr(p, "help", None) or "" for p in command.params)
        for sub in getattr(command, "commands", {}).values():
            yield from helps(sub)

    for text in helps(typer.main.get_command(app)):
        assert Text.from_markup(text).plain == text.replace("\\[", "["), text
    assert "(default: [ct] model)" in esteira("serve", "--help").stdout


def test_run_runs_show(write_project):
    root = write_project(PIPELINE)
    first = esteira("run", "flow", "--project", str(root), "--param", "factor=3")
    assert first.returncode == 0, first.stderr
    assert "4 ran, 0 cached" in first.stdout
    again = esteira("run", "flow", "--project", str(root), "--param", "factor=3")
    assert "0 ran, 4 cached" in again.stdout

    listing = esteira("runs", "--project", str(root))
    assert listing.returncode == 0 and listing.stdout.count("completed") == 2

    from esteira.project import open_project

    run_id = open_project(root).metadata.runs()[0].id
    shown = esteira("show", run_id[:8], "--project", str(root))
    assert shown.returncode == 0, shown.stderr
    for text in ("scaled", "cached ←", "factor=3", "total=18"):
        assert text in shown.stdout

    by_hand = esteira("run", "flow", "--project", str(root), "--only", "total", "--no-cache")
    assert by_hand.returncode == 0 and "1 ran, 0 cached" in by_hand.stdout


def test_user_errors_are_one_clear_line_without_traceback(write_project):
    root = write_project(PIPELINE)
    cases = [
        (["run", "nope", "--project", str(root)], "has no pipeline 'nope' (pipelines: flow)"),
        (["run", "flow", "--project", str(root), "--param", "factr=2"], "no parameter 'factr'"),
        (["run", "flow", "--project", str(root), "--only", "ghost"], "has no step 'ghost'"),
        (["show", "zzzz", "--project", str(root)], "no run matches 'zzzz'"),
        (["run", "flow", "--project", str(root / "missing")], "does not exist"),
    ]
    for args, message in cases:
        out = esteira(*args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert message in " ".join(out.stderr.split()), (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_failing_step_shows_the_user_code_traceback(write_project):
    root = write_project(PIPELINE)
    (root / "fail").touch()
    out = esteira("run", "flow", "--project", str(root))
    assert out.returncode == 1
    assert "the flag file says fail" in out.stderr
    assert "pipelines.py" in out.stderr  # where in the user's code
    assert "rerun to resume" in " ".join(out.stderr.split())


SLOW = """
import time
from pathlib import Path

from esteira import pipeline, step

HERE = Path(__file__).parent


@step
def quick(ctx):
    ctx.log_metrics({"quick": 1.0})  # the run is in MLflow before the slow step starts
    return {"ok": 1}


@step
def slow(quick):
    (HERE / "started").touch()
    if (HERE / "slow").exists():
        time.sleep(60)
    return quick


flow = pipeline("flow", [quick, slow])
"""


def _start_and_wait(root: Path) -> subprocess.Popen[str]:
    import time

    proc = subprocess.Popen(
        [*ESTEIRA, "run", "flow", "--project", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + 60
    while not (root / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_sigterm_records_the_interruption_and_a_rerun_resumes(write_project):
    import signal

    from esteira.project import open_project

    root = write_project(SLOW)
    (root / "slow").touch()
    proc = _start_and_wait(root)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    (record,) = open_project(root).metadata.runs()
    record = open_project(root).metadata.run(record.id)
    assert record.status == "failed" and "interrupted" in record.error
    assert {s.step: s.status for s in record.steps} == {"quick": "completed", "slow": "failed"}

    (root / "slow").unlink()
    rerun = esteira("run", "flow", "--project", str(root))
    assert rerun.returncode == 0 and "1 ran, 1 cached" in rerun.stdout


def test_a_run_killed_hard_shows_as_died(write_project):
    from esteira.project import open_project

    root = write_project(SLOW)
    (root / "slow").touch()
    proc = _start_and_wait(root)
    proc.kill()
    proc.wait(timeout=30)
    listing = esteira("runs", "--project", str(root))
    assert "died" in listing.stdout
    (record,) = open_project(root).metadata.runs()
    assert record.status == "running" and record.shown_status == "died"

    # The next run closes it, here and in MLflow.
    (root / "slow").unlink()
    assert esteira("run", "flow", "--project", str(root)).returncode == 0
    project = open_project(root)
    closed = project.metadata.run(record.id)
    assert closed.status == "failed" and "died before the run recorded its end" in closed.error
    assert {s.step: s.status for s in closed.steps}["slow"] == "failed"
    assert project.tracker.client.get_run(closed.mlflow_run_id).info.status == "FAILED"
