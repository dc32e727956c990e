"""serving.batcher with a fake model: requests within the wait window share a batch, no batch exceeds
max_batch, one failing request leaves the others their results, a cancelled request frees its place."""

import asyncio
import threading

import pytest

from engine.errors import ItemFailure, UserFacingError
from serving.batcher import Batcher


class FakeModel:
    """Doubles each number; a negative one fails alone. Records the batches it was given."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list[int]] = []
        self.delay = delay
        self.release = threading.Event()
        self.release.set()

    def __call__(self, jobs):
        self.release.wait(5)
        self.batches.append([job.payload for job in jobs])
        for job in jobs:
            yield job, (ItemFailure(job.id, UserFacingError("negative")) if job.payload < 0 else 2 * job.payload)


def run(coro):
    return asyncio.run(coro)


async def started(model, **options) -> Batcher:
    batcher = Batcher("fake", model, **{"max_batch": 4, "max_wait_ms": 50, **options})
    await batcher.start()
    return batcher


def test_requests_within_the_window_share_a_batch_and_max_batch_is_respected():
    async def go():
        model = FakeModel()
        batcher = await started(model, max_batch=4)
        jobs = [batcher.submit(n) for n in range(6)]
        results = await asyncio.gather(*(batcher.result(j) for j in jobs))
        later = await batcher.result(batcher.submit(10))  # after the window: a batch of its own
        await batcher.stop()
        return model, batcher, results, later, jobs

    model, batcher, results, later, jobs = run(go())
    assert results == [0, 2, 4, 6, 8, 10] and later == 20
    assert model.batches == [[0, 1, 2, 3], [4, 5], [10]]
    assert [(j.batch_size, j.batch_index) for j in jobs[3:5]] == [(4, 3), (2, 0)]
    assert batcher.stats()["batch_sizes"] == {"1": 1, "2": 1, "4": 1}


def test_only_requests_with_the_same_key_share_a_batch():
    async def go():
        model = FakeModel()
        batcher = await started(model)
        jobs = [batcher.submit(n, key=n % 2) for n in range(4)]
        await asyncio.gather(*(batcher.result(j) for j in jobs))
        await batcher.stop()
        return model

    assert run(go()).batches == [[0, 2], [1, 3]]


def test_a_failing_request_does_not_fail_the_others_in_its_batch():
    async def go():
        batcher = await started(FakeModel())
        results = await asyncio.gather(*(batcher.result(batcher.submit(n)) for n in (1, -1, 3)))
        await batcher.stop()
        return results

    one, failed, three = run(go())
    assert (one, three) == (2, 6) and isinstance(failed, ItemFailure) and failed.message == "negative"


def test_a_batch_that_raises_answers_every_request_and_the_next_batch_runs():
    def broken(jobs):
        if any(job.payload == 99 for job in jobs):
            raise RuntimeError("model exploded")
        yield from ((job, job.payload) for job in jobs)

    async def go():
        batcher = await started(broken)
        failed = await asyncio.gather(*(batcher.result(batcher.submit(n)) for n in (99, 1)), return_exceptions=True)
        after = await batcher.result(batcher.submit(5))
        await batcher.stop()
        return failed, after

    failed, after = run(go())
    assert all(isinstance(f, RuntimeError) for f in failed) and after == 5


def test_a_cancelled_request_is_dropped_before_its_batch_and_discarded_after():
    async def go():
        model = FakeModel()
        model.release.clear()  # the first batch blocks in the worker
        batcher = await started(model, max_batch=2, max_wait_ms=0)
        running = batcher.submit(1)
        await asyncio.sleep(0.05)  # its batch has started
        waiting = [batcher.submit(n) for n in (2, 3)]
        batcher.cancel(waiting[0])  # before its batch: dropped, its place free
        batcher.cancel(running)  # during its batch: the batch goes on, the result is thrown away
        assert batcher.stats()["waiting"] == 1
        model.release.set()
        result = await batcher.result(waiting[1])
        await batcher.stop()
        return model, running, result

    model, running, result = run(go())
    assert model.batches == [[1], [3]] and result == 6
    assert running.future.cancelled()


def test_a_cancelled_wait_cancels_its_job():
    async def go():
        model = FakeModel()
        model.release.clear()
        batcher = await started(model, max_batch=1, max_wait_ms=0)
        busy = batcher.submit(0)
        await asyncio.sleep(0.05)
        job = batcher.submit(7)
        waiter = asyncio.create_task(batcher.result(job))
        await asyncio.sleep(0.01)
        waiter.cancel()  # what the server does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await waiter
        model.release.set()
        await batcher.result(busy)
        await batcher.stop()
        return model, job

    model, job = run(go())
    assert job.cancelled and model.batches == [[0]]
