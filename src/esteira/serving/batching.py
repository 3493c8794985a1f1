"""Micro-batching: requests that arrive while the model is busy are predicted together.

A tabular model's cost on a few rows is mostly fixed overhead (the flight model takes the
same ~5 ms for 1 row as for 8), so under concurrent load one call for all waiting requests
multiplies throughput, while a lone request waits for nothing: the batch is whatever is
queued when the model becomes free. A lone request is predicted on the event loop itself
(a hop to a worker thread costs ~1 ms); a batch goes to a worker thread, so the loop reads
and checks the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from esteira.serving.loaded import LoadedModel

Waiting = tuple["LoadedModel", "pd.DataFrame", asyncio.Future]


class Batcher:
    def __init__(self, max_rows: int = 4096) -> None:
        self.max_rows = max_rows
        self._queue: asyncio.Queue[Waiting] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def predict(self, model: LoadedModel, frame: pd.DataFrame) -> list[Any]:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((model, frame, future))
        return await future

    async def _run(self) -> None:
        while True:
            waiting = [await self._queue.get()]
            size = len(waiting[0][1])
            while not self._queue.empty() and size < self.max_rows:
                waiting.append(self._queue.get_nowait())
                size += len(waiting[-1][1])
            # Requests taken before and after a hot swap hold different models.
            by_model: dict[int, list[Waiting]] = {}
            for item in waiting:
                by_model.setdefault(id(item[0]), []).append(item)
            for group in by_model.values():
                await self._predict_group(group)

    async def _predict_group(self, group: list[Waiting]) -> None:
        model = group[0][0]
        try:
            if len(group) == 1:  # a lone request: no hop, lowest latency
                values = model.predict(group[0][1])
            else:  # under load: let the loop read the next requests meanwhile
                import pandas as pd

                frame = pd.concat([f for _, f, _ in group], ignore_index=True)
                values = await asyncio.to_thread(model.predict, frame)
        except Exception as e:
            for _, _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        start = 0
        for _, frame, future in group:
            if not future.done():
                future.set_result(values[start : start + len(frame)])
            start += len(frame)
