"""Adaptive batching: concurrent requests share one model call.

Requests queue their decoded pixels; one worker takes the first, then whatever else is already
waiting, and waits at most `max_wait` for more, up to `max_batch_size` images, then runs the
model once and hands each request its own rows. Under load the queue fills while the model
runs, so batches grow by themselves; a request waits at most `max_wait`, and only while other
calls are running (on an idle model it goes at once). Decoding happens
before the queue, per request: a bad image fails its own request and nobody else's batch.
KServe's own batcher batches V1 requests only (kserve #2275); this one sits below every
protocol: V2 REST, gRPC, V1 and the course's /upload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .metrics import BATCH_SIZE, CALLS_IN_FLIGHT, MODEL_CALL_SECONDS, QUEUE_IMAGES, QUEUE_SECONDS


@dataclass
class _Waiting:
    pixels: np.ndarray
    answer: asyncio.Future
    since: float  # time.monotonic() when it was queued
    images: int  # as queued (`pixels` is emptied if its caller leaves)


class AdaptiveBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        executor: Executor,
        *,
        max_batch_size: int = 16,
        max_wait: float = 0.002,
        in_flight: int = 1,
    ):
        self.run = run
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.in_flight = in_flight
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._worker: asyncio.Task | None = None
        self._carried: _Waiting | None = None  # did not fit the last batch: first of the next

    @property
    def queue(self) -> asyncio.Queue[_Waiting]:
        """The queue of the running worker (made with it, on the caller's event loop)."""
        assert self._queue is not None, "no worker yet: call the batcher first"
        return self._queue

    async def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The model's rows for `pixels`. A request of more images than `max_batch_size` goes
        in parts of at most that many: a runtime keeps the working memory of the largest batch
        it has run (measured: one 32-image request left the demo model's OpenVINO streams 330
        MB larger for good; VGG16's activations are ~60 MB an image), so no call may be larger
        than the batch size measured at load."""
        most = self.max_batch_size
        if len(pixels) > most:
            parts = [pixels[start : start + most] for start in range(0, len(pixels), most)]
            return np.concatenate(await asyncio.gather(*(self._queued(p) for p in parts)))
        return await self._queued(pixels)

    async def _queued(self, pixels: np.ndarray) -> np.ndarray:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        answer = asyncio.get_running_loop().create_future()
        QUEUE_IMAGES.inc(len(pixels))
        waiting = _Waiting(pixels, answer, time.monotonic(), len(pixels))
        await self.queue.put(waiting)
        try:
            return await answer
        except asyncio.CancelledError:
            # The caller is gone (a deadline, a cancel) and gives its memory back: its queued
            # entry must not keep its pixels until the worker reaches it.
            waiting.pixels = pixels[:0]
            raise

    async def _next_batch(self, running: set[asyncio.Task]) -> list[_Waiting]:
        """The next batch: the first waiting request, whatever else is queued, and, when the
        model is busy with other calls (`running`), whatever arrives within `max_wait`. On an
        idle model nothing is gained by waiting (no call to share with is due), so a lone
        request goes at once: that keeps one client's latency at the model's own."""
        first, self._carried = self._carried, None
        batch = [first or await self.queue.get()]
        size = len(batch[0].pixels)
        busy = bool(running)  # now, once a request is here: not when the wait for it began
        deadline = time.monotonic() + (self.max_wait if busy else 0.0)
        while size < self.max_batch_size:
            try:
                waiting = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    waiting = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(waiting.pixels) > self.max_batch_size:
                self._carried = waiting
                break
            batch.append(waiting)
            size += len(waiting.pixels)
        return batch

    async def _work(self) -> None:
        """Form a batch whenever a model call may start: at most `in_flight` run at once, and
        while they run the queue fills, so the next batch takes everything that arrived."""
        slots = asyncio.Semaphore(self.in_flight)
        running: set[asyncio.Task] = set()
        while True:
            await slots.acquire()
            batch = await self._next_batch(running)
            now = time.monotonic()
            for waiting in batch:
                QUEUE_IMAGES.dec(waiting.images)
                QUEUE_SECONDS.observe(now - waiting.since)
            live = [w for w in batch if not w.answer.done()]  # a caller may have given up
            if not live:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run_batch(live))
            running.add(task)

            def finished(done: asyncio.Task, slots: asyncio.Semaphore = slots) -> None:
                running.discard(done)
                slots.release()

            task.add_done_callback(finished)

    def _run(self, parts: list[np.ndarray]) -> np.ndarray:
        """In the executor: join the requests' rows (a copy the event loop need not make)."""
        pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)
        with CALLS_IN_FLIGHT.track_inprogress(), MODEL_CALL_SECONDS.time():
            return self.run(pixels)

    async def _run_batch(self, live: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        size = sum(len(w.pixels) for w in live)
        BATCH_SIZE.observe(size)
        try:
            values = await loop.run_in_executor(self.executor, self._run, [w.pixels for w in live])
        except Exception as exc:  # the model failed: every caller of this batch hears why
            for waiting in live:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        start = 0
        for waiting in live:
            end = start + len(waiting.pixels)
            if not waiting.answer.done():
                waiting.answer.set_result(values[start:end])
            start = end
