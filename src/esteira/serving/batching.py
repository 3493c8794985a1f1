"""Micro-batching: requests that arrive while the model is busy are completed and predicted
together.

A tabular model's cost on a few rows is mostly fixed overhead (the flight model takes the
same ~5 ms for 1 row as for 8), and so is a feature lookup's (one online-store read and one
`derive` call), so under concurrent load one call for all waiting requests multiplies
throughput, while a lone request waits for nothing: the batch is whatever is queued when
the model becomes free. A lone request is completed and predicted on the event loop itself
(a hop to a worker thread costs ~1 ms); a batch goes to a worker thread, so the loop reads
and checks the next requests meanwhile.

Rows are checked and converted before they join a batch; if the model still fails on a
batch, its requests are predicted one by one, so only the one it cannot take fails.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from esteira.serving.inputs import Checked, Completed, complete
from esteira.serving.requests import MAX_PROBLEMS, BadRequest

if TYPE_CHECKING:
    from esteira.features import FeatureStore
    from esteira.models import LoadedModel

Waiting = tuple["LoadedModel", Checked, asyncio.Future]
Answer = tuple[list[Any], Completed]
"""A request's predictions and its share of the batch's completed inputs."""


class Batcher:
    def __init__(self, features: FeatureStore, max_rows: int = 4096) -> None:
        self.features = features
        self.max_rows = max_rows
        self._queue: asyncio.Queue[Waiting] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def predict(self, model: LoadedModel, request: Checked) -> Answer:
        """The request's predictions and its share of the batch's completed inputs; raises
        what predicting it alone raised, never what another request in its batch did."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((model, request, future))
        return await future

    async def _run(self) -> None:
        while True:
            waiting = [await self._queue.get()]
            size = len(waiting[0][1].rows)
            while not self._queue.empty() and size < self.max_rows:
                waiting.append(self._queue.get_nowait())
                size += len(waiting[-1][1].rows)
            # Requests taken before and after a hot swap hold different models; lookups
            # and complete rows are completed differently.
            groups: dict[tuple[int, bool], list[Waiting]] = {}
            for item in waiting:
                groups.setdefault((id(item[0]), item[1].lookup), []).append(item)
            for group in groups.values():
                await self._predict_group(group)

    async def _predict_group(self, group: list[Waiting]) -> None:
        """Predict the group's requests together; if that fails, each alone, so a request
        the model cannot take fails by itself and the others get their predictions."""
        model, requests = group[0][0], [request for _, request, _ in group]
        futures = [future for _, _, future in group]
        try:
            if len(group) == 1:  # a lone request: no hop, lowest latency
                _settle(futures, self._together(model, requests))
            else:  # let the loop read the next requests meanwhile
                _settle(futures, await asyncio.to_thread(self._together, model, requests))
            return
        except Exception as e:
            if len(group) == 1:
                _fail(futures[0], await asyncio.to_thread(self._blame, model, requests[0], e))
                return
        # Rare (a request the row checks let through and the model refuses): one call each.
        alone = await asyncio.to_thread(self._each_alone, model, requests)
        for future, outcome in zip(futures, alone, strict=True):
            if isinstance(outcome, Exception):
                _fail(future, outcome)
            else:
                _settle([future], [outcome])

    def _together(self, model: LoadedModel, requests: list[Checked]) -> list[Answer]:
        frame, shares = complete(model, requests, self.features)
        values = model.predict(frame)
        if len(values) != len(frame):
            raise RuntimeError(f"the model gave {len(values)} predictions for {len(frame)} rows")
        answers, start = [], 0
        for request, share in zip(requests, shares, strict=True):
            end = start + len(request.rows)
            answers.append((values[start:end], share))
            start = end
        return answers

    def _each_alone(self, model: LoadedModel, requests: list[Checked]) -> list[Any]:
        outcomes: list[Any] = []
        for request in requests:
            try:
                outcomes += self._together(model, [request])
            except Exception as e:
                outcomes.append(self._blame(model, request, e))
        return outcomes

    def _blame(self, model: LoadedModel, request: Checked, error: Exception) -> Exception:
        """Why the model failed on a request alone: a 422 naming its missing values when
        they are the cause (the model takes none, and scores the same rows once they are
        filled in), else the model's own error."""
        try:
            frame, _ = complete(model, [request], self.features)
            gaps = {c: frame[c].isna().to_numpy().nonzero()[0] for c in frame.columns
                    if frame[c].dtype.kind in "fO"}  # fmt: skip
            gaps = {c: rows for c, rows in gaps.items() if len(rows)}
            if not gaps:
                return error
            model.predict(frame.fillna({c: _filler(frame[c]) for c in gaps}))
        except Exception:
            return error
        looked_up = set(model.service.looked_up) if request.lookup and model.service else set()
        problems = [{"row": int(row), "field": c, "error": _missing(c in looked_up)}
                    for c, rows in gaps.items() for row in rows]  # fmt: skip
        return BadRequest(422, problems[:MAX_PROBLEMS])


def _settle(futures: list[asyncio.Future], answers: list[Answer]) -> None:
    for future, (values, share) in zip(futures, answers, strict=True):
        if future.done():  # its client went away
            continue
        wrong = _not_finite(values)
        if wrong is not None:
            message = (f"the model's prediction for row {wrong} is not a finite number: its "
                       "inputs are beyond what the model can score")  # fmt: skip
            future.set_exception(BadRequest(422, [{"row": wrong, "error": message}]))
        else:
            future.set_result((values, share))


def _missing(looked_up: bool) -> str:
    why = "missing: the model takes no missing value here"
    if looked_up:
        return f"{why} (the feature store has none for this row: unknown entity or stale)"
    return why


def _filler(column: Any) -> Any:
    return 0.0 if column.dtype.kind == "f" else ""


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


def _not_finite(values: list[Any]) -> int | None:
    """The first row whose prediction JSON cannot carry (NaN or infinite), if any."""
    for row, value in enumerate(values):
        scores = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in scores):
            return row
    return None
