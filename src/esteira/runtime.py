"""The thread budget: how many threads OpenMP and BLAS may use in a step, a gate, a batch
prediction or the service, and a context manager that applies it.

Why it matters: OpenMP threads wait for each other by spinning. When another process keeps
a core busy, a team as large as the machine spends its time waiting for the member the OS
did not schedule: a HistGradientBoosting fit was seen to take 98 s with 2 threads on a busy
2-core machine, against 2 s with one (`benchmarks/threads.py` measures it). A team no larger
than the idle cores does not wait.

The rule, when `[runtime] threads` is unset: the cores this process may use (its CPU
affinity, and a cgroup CPU quota when one is set) less the cores other processes keep busy,
at least one. Other processes keep busy the larger of the tasks runnable right now besides
this one (the fewest of a few reads, so that a passing kernel thread does not count) and the
1-minute load average less this process, rounded. The instant count sees a competitor that
just started, which the load average takes a minute to show; the load average remembers
one that comes and goes.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Read by each library once, when it loads: a library a step imports inside the budget
# (scikit-learn's OpenMP, typically) starts with the budget too, and so do child processes.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_RECHECK_S = 1.0  # steps shorter than this share one reading of the machine


def default_threads(cores: int, load_1min: float, running_now: int | None) -> int:
    """Threads for training-like work: `cores` less those other processes keep busy, at
    least 1. `load_1min` counts this process too; `running_now` (runnable tasks, this one
    included) is None where the OS does not say."""
    others = math.floor(max(0.0, load_1min - 1) + 0.5)
    if running_now is not None:
        others = max(others, running_now - 1)
    return max(1, cores - others)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def machine_threads() -> int:
    """`default_threads` for this machine, now."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows: no load average
        return usable_cores()
    return default_threads(usable_cores(), load, _running_now())


def training_threads(configured: int | None) -> int:
    """Threads for steps, gates and batch prediction: `configured` (`[runtime] threads`)
    when set, else the rule."""
    if configured is not None:
        return configured
    now = time.monotonic()
    if now - _reading["at"] >= _RECHECK_S:
        _reading.update(at=now, threads=machine_threads())
    return int(_reading["threads"])


_reading: dict[str, float] = {"at": -math.inf, "threads": 1}  # the last reading of the machine


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that give libraries loaded later (or a child process) `threads`."""
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


@contextmanager
def thread_budget(threads: int) -> Iterator[int]:
    """Inside the block, OpenMP and BLAS use at most `threads` threads: the libraries already
    loaded (threadpoolctl; OpenMP's limit holds for the calling thread), the ones loaded
    meanwhile and child processes (environment variables). Nested blocks restore the outer."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(thread_env(threads))
    try:
        with _controller().limit(limits=threads):
            yield threads
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def use_threads(threads: int) -> None:
    """Give this process `threads` from now on (the service), before it loads a model: every
    thread of the libraries loaded later, and the calling thread of those already loaded."""
    os.environ.update(thread_env(threads))
    limit_this_thread(threads)


def limit_this_thread(threads: int) -> None:
    """The libraries already loaded use `threads` from now on: BLAS in every thread, OpenMP
    in the calling one (its limit is per thread)."""
    _controller().limit(limits=threads)


# Finding the loaded libraries takes milliseconds (threadpoolctl walks the shared objects);
# only an import can load one, so the list is refreshed when the set of modules grows.
_controllers: dict[int, Any] = {}


def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    loaded = len(sys.modules)
    if loaded not in _controllers:
        _controllers.clear()
        _controllers[loaded] = ThreadpoolController()
    return _controllers[loaded]


def _running_now(reads: int = 3, pause_s: float = 0.001) -> int | None:
    """Runnable tasks on the machine (this one included), the fewest of a few reads."""
    counts = []
    for i in range(reads):
        try:
            fields = Path("/proc/loadavg").read_text().split()
        except OSError:  # not Linux
            return None
        counts.append(int(fields[3].split("/")[0]))
        if i < reads - 1:
            time.sleep(pause_s)
    return min(counts)


def _cgroup_quota() -> float | None:
    """Cores a cgroup CPU quota allows (containers), or None when there is none."""
    try:  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        base = Path("/sys/fs/cgroup/cpu")
        quota_us = int((base / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None
