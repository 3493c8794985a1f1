"""Where a result came from: who ran it, on which commit, and what identifies a function's code.

Used by the runner (pipeline runs), the registry (alias changes) and feature definitions
(fingerprints); it imports nothing of esteira, so any layer may use it.
"""

from __future__ import annotations

import getpass
import inspect
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def executor() -> str:
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def git_commit(root: Path) -> str:
    """HEAD of the project's repository, with '-dirty' when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def source_of(fn: Callable[..., Any]) -> str:
    """What identifies a function's code: its source, or its bytecode where none is kept."""
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):  # defined where no source is kept (e.g. exec)
        co = fn.__code__
        return repr((co.co_code, co.co_consts, co.co_names))


def held(changes: Iterable[Any], value: Callable[[Any], str]) -> list[str]:
    """What something held over its history of changes, oldest first, as a stack: a
    rollback goes back to what it held before, any other change sets `value(change)`. The
    registry's aliases and the environments' releases move this way."""
    stack: list[str] = []
    for change in changes:
        if change.action == "rollback" and stack:
            stack.pop()
        else:
            stack.append(value(change))
    return stack
