"""Micro-batching: requests that arrive while the model is busy are completed and predicted
together.

A tabular model's cost on a few rows is mostly fixed overhead (the flight model takes the
same ~5 ms for 1 row as for 8), and so is a feature lookup's (one online-store read and one
`derive` call), so under concurrent load one call for all waiting requests multiplies
throughput, while a lone request waits for nothing: the batch is whatever is queued when
the model becomes free. A lone request is completed and predicted on the event loop itself
(a hop to a worker thread costs ~1 ms); a batch goes to a worker thread, so the loop reads
and checks the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from esteira.serving.inputs import Checked, Completed, complete

if TYPE_CHECKING:
    from esteira.features import FeatureStore
    from esteira.models import LoadedModel

Waiting = tuple["LoadedModel", Checked, asyncio.Future]


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

    async def predict(self, model: LoadedModel, request: Checked) -> tuple[list[Any], Completed]:
        """The request's predictions and its share of the batch's completed inputs."""
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
        model, requests = group[0][0], [request for _, request, _ in group]

        def work() -> tuple[list[Any], list[Completed]]:
            frame, shares = complete(model, requests, self.features)
            return model.predict(frame), shares

        try:
            if len(group) == 1:  # a lone request: no hop, lowest latency
                values, shares = work()
            else:  # let the loop read the next requests meanwhile
                values, shares = await asyncio.to_thread(work)
        except Exception as e:
            for _, _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        start = 0
        for (_, request, future), share in zip(group, shares, strict=True):
            end = start + len(request.rows)
            if not future.done():
                future.set_result((values[start:end], share))
            start = end
