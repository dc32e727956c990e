"""Cross-request batching: requests that arrive within ``max_wait_ms`` of each other share one batch.

    batcher = Batcher("talker", run_batch, max_batch=8, max_wait_ms=20)
    await batcher.start()                      # inside the server's event loop
    job = batcher.submit(request)              # from an endpoint
    result = await batcher.result(job)         # the request's result, or its ItemFailure

Each model gets one worker thread: the models are not thread-safe, and generation must stay off the event
loop so the server keeps answering while a batch runs. ``run_batch(jobs)`` runs in that thread and yields
``(job, result)`` pairs as results come (a family's ``generate_each``, mapped back to its jobs); each job's
future is resolved as its pair arrives, so one request's :class:`ItemFailure` never fails the others.
Only jobs with the same ``key`` (a sampler setting that must be shared) go into one batch.

A job cancelled before its batch starts is dropped; after, its result is thrown away (the batch goes on
without waiting for its client). Either way its slot is free at once.
"""

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engine.errors import UserFacingError

log = logging.getLogger(__name__)

RECENT_BATCHES = 1000  # batch sizes kept for /v1/models and the load test


class BatchError(UserFacingError, RuntimeError):
    pass


@dataclass(eq=False)
class Job:
    """One request waiting for (or in) a batch."""

    payload: Any  # what run_batch generates from (a SilentClip, a TalkerRequest, ...)
    key: Hashable  # only jobs with equal keys share a batch
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)
    events: asyncio.Queue | None = None  # streaming: the worker's patches, then ("done", result)
    on_patch: Callable | None = None  # streaming: called in the worker thread with each generated patch
    started: bool = False
    cancelled: bool = False
    batch_size: int = 0  # the batch it ran in, and its place there (headers X-Batch-Size / X-Batch-Index)
    batch_index: int = -1
    id: str = ""

    @property
    def live(self) -> bool:
        """Still wanted by its client (read from the worker thread: a stale False only costs one patch)."""
        return not self.cancelled


class Batcher:
    def __init__(self, name: str, run_batch: Callable[[list[Job]], Iterator[tuple[Job, Any]]], max_batch: int,
                 max_wait_ms: float):
        self.name, self.run_batch = name, run_batch
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self._pending: list[Job] = []
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-model")
        self._ids = itertools.count()
        self.recent_sizes: collections.deque[int] = collections.deque(maxlen=RECENT_BATCHES)
        self.size_counts: collections.Counter[int] = collections.Counter()
        self.running = 0  # jobs in the batch now being generated

    # ------------------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._serve(), name=f"{self.name}-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._pending:
            job.future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------------------------- requests
    def submit(self, payload: Any, key: Hashable = None, stream: bool = False) -> Job:
        job = Job(payload, key, self._loop.create_future(), events=asyncio.Queue() if stream else None,
                  id=f"{self.name}-{next(self._ids)}")
        self._pending.append(job)
        self._wakeup.set()
        return job

    async def result(self, job: Job) -> Any:
        """The job's result (or ItemFailure); a cancelled wait (client gone) cancels the job."""
        try:
            return await job.future
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    def cancel(self, job: Job) -> None:
        """Drop the job if its batch has not started, else let the batch finish without it."""
        job.cancelled = True
        if not job.started and job in self._pending:
            self._pending.remove(job)
            self._wakeup.set()  # the batch being gathered may have lost its first job
        if not job.future.done():
            job.future.cancel()

    # ----------------------------------------------------------------------------------- worker
    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            self.recent_sizes.append(len(batch))
            self.size_counts[len(batch)] += 1
            self.running = len(batch)
            try:
                await self._loop.run_in_executor(self._executor, self._generate, batch)
            except Exception as error:  # noqa: BLE001 (the server stays up; every job of the batch gets the error)
                log.exception("%s: batch of %d failed", self.name, len(batch))
                for job in batch:
                    self._resolve(job, error)
            finally:
                self.running = 0
                for job in batch:  # a job run_batch forgot: never leave its client waiting
                    if not job.future.done():
                        self._resolve(job, BatchError(f"{self.name}: the batch gave no result for this request"))

    async def _gather(self) -> list[Job]:
        """The next batch: the oldest waiting job and up to ``max_batch - 1`` more of its key, waiting at most
        ``max_wait`` from its arrival for them (a batch that is already full goes at once)."""
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            first = self._pending[0]
            while first in self._pending and self._count(first.key) < self.max_batch:
                remaining = first.arrived + self.max_wait - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            if first not in self._pending:  # cancelled while we waited: start over from the new oldest
                continue
            batch = [job for job in self._pending if job.key == first.key][: self.max_batch]
            for index, job in enumerate(batch):
                self._pending.remove(job)
                job.started, job.batch_size, job.batch_index = True, len(batch), index
            return batch

    def _count(self, key: Hashable) -> int:
        return sum(job.key == key for job in self._pending)

    def _generate(self, batch: list[Job]) -> None:
        """In the worker thread: run the batch, handing each result to the event loop as it comes."""
        tick = time.perf_counter()
        for job, result in self.run_batch(batch):
            self._loop.call_soon_threadsafe(self._resolve, job, result)
        log.info("%s: batch of %d in %.3f s", self.name, len(batch), time.perf_counter() - tick)

    @staticmethod
    def _resolve(job: Job, result: Any) -> None:
        """In the event loop: the job's result; a cancelled job's is thrown away."""
        if job.future.done():
            return
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)
        if job.events is not None:
            job.events.put_nowait(("done", result))

    # ------------------------------------------------------------------------------------ stats
    def stats(self) -> dict:
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000, "waiting": len(self._pending),
                "running": self.running, "batches": sum(self.size_counts.values()),
                "requests": sum(size * n for size, n in self.size_counts.items()),
                "batch_sizes": {str(size): n for size, n in sorted(self.size_counts.items())}}
