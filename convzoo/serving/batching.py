"""Dynamic batching: concurrent requests for one model run as one onnxruntime call.

Requests wait in a queue up to ``delay_s`` (counted from the oldest, as Triton's
``max_queue_delay_microseconds``) for others with the same trailing shape, and run together up to
``max_batch`` rows. A lone request is not held back: the batcher waits only while other requests
for the model have already reached the server, or the last batch it ran held more than one
request (the service is under concurrent load). So one client pays no delay and many clients
share runs. Results go back to their requests in order. When a merged batch fails, each of its
requests runs alone, so only a request that fails by itself gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from convzoo.serving.timeouts import within

Feeds = Mapping[str, np.ndarray]
Results = dict[str, np.ndarray]


class Overloaded(Exception):
    """The queue is full; the client should retry later (503)."""


class ShuttingDown(Exception):
    """The server stopped before this request ran (503)."""


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    key: tuple
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def _key(feeds: Feeds) -> tuple:
    return tuple(sorted((name, array.shape[1:], array.dtype.str) for name, array in feeds.items()))


class Batcher:
    """One queue and one worker per model; ``run`` takes a feed dict and returns every output."""

    def __init__(self, name: str, run: Callable[[Feeds], Results], *, max_batch: int = 32, delay_s: float = 0.002,
                 max_queue: int = 1024, observe: Callable[[str, int, int, float, list[float]], None] | None = None
                 ) -> None:
        self.name = name
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self.delay_s = max(0.0, float(delay_s))
        self.max_queue = max_queue
        self._observe = observe  # (model, rows, requests, run seconds, queue seconds per request)
        self._queue: deque[_Pending] = deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"convzoo-batch-{name}")
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._announced = 0
        self._last_requests = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.delay_s > 0 and self.max_batch > 1

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request that is being read and decoded, so a forming batch may wait for it."""
        self._announced += 1
        try:
            yield
        finally:
            self._announced -= 1

    async def submit(self, feeds: Feeds) -> Results:
        if self._closed:
            raise ShuttingDown(f"model {self.name!r} is shutting down")
        rows = next(iter(feeds.values())).shape[0]
        if not self.enabled:  # batching off: each request is its own run, concurrently
            start = time.perf_counter()
            results = await asyncio.get_running_loop().run_in_executor(None, self._run, feeds)
            self._report(rows, 1, time.perf_counter() - start, [0.0])
            return results
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"model {self.name!r} has {len(self._queue)} requests waiting; retry shortly")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._work(), name=f"convzoo-batcher-{self.name}")
        pending = _Pending(feeds, rows, _key(feeds), loop.create_future())
        self._queue.append(pending)
        self._arrived.set()
        return await pending.future

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(ShuttingDown(f"model {self.name!r} stopped before this request ran"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    # the worker -------------------------------------------------------------------------------

    def _rows_ready(self, key: tuple) -> int:
        return sum(p.rows for p in self._queue if p.key == key)

    async def _work(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._queue[0]
            deadline = first.enqueued + self.delay_s
            while self._rows_ready(first.key) < self.max_batch and (self._announced or self._last_requests > 1):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await within(self._arrived.wait(), remaining)
            batch = self._take(first.key)
            self._last_requests = len(batch)
            await self._execute(loop, batch)

    def _take(self, key: tuple) -> list[_Pending]:
        batch, kept, rows = [], deque(), 0
        for pending in self._queue:
            if pending.key == key and rows + pending.rows <= self.max_batch:
                batch.append(pending)
                rows += pending.rows
            else:
                kept.append(pending)
        self._queue = kept
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        waits = [start - p.enqueued for p in batch]
        feeds = (batch[0].feeds if len(batch) == 1 else
                 {name: np.concatenate([p.feeds[name] for p in batch]) for name in batch[0].feeds})
        try:
            results = await loop.run_in_executor(self._executor, self._run, feeds)
        except Exception as error:  # noqa: BLE001 -- the error goes back to the requests, the worker lives on
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
            else:
                for pending in batch:  # isolate the request that fails from those merged with it
                    try:
                        alone = await loop.run_in_executor(self._executor, self._run, pending.feeds)
                    except Exception as e:  # noqa: BLE001
                        _settle(pending.future, error=e)
                    else:
                        _settle(pending.future, result=alone)
            self._report(sum(p.rows for p in batch), len(batch), time.perf_counter() - start, waits)
            return
        self._report(sum(p.rows for p in batch), len(batch), time.perf_counter() - start, waits)
        offset = 0
        for pending in batch:
            _settle(pending.future, result={name: out[offset:offset + pending.rows] for name, out in results.items()})
            offset += pending.rows

    def _report(self, rows: int, requests: int, seconds: float, waits: list[float]) -> None:
        if self._observe is not None:
            self._observe(self.name, rows, requests, seconds, waits)


def _settle(future: asyncio.Future, result: Results | None = None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away; nobody waits for this answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
