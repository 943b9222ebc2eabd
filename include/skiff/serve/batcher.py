"""The micro-batcher: concurrent requests of one endpoint grouped into one model call.

A request waits on a lock while one worker thread runs the model for every request queued
with it, so a small model's fixed cost per call is paid once per batch, not per request. The
wait is bounded: a request whose model call does not come back in time raises
:class:`PredictTimeout` (the server answers 503) and is dropped from any batch not yet run.
"""

from __future__ import annotations

import _thread
import queue
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from skiff.exceptions import ServingError

if TYPE_CHECKING:
    from skiff.serve.model import LoadedModel

__all__ = ["MicroBatcher", "PredictTimeout"]


class PredictTimeout(ServingError):
    """A request's model call did not come back in time (the model is stuck or overloaded)."""


class _Job:
    """One request waiting for the batcher: its model, ids, and a lock released when done."""

    __slots__ = ("model", "ids", "done", "result", "error", "abandoned")

    def __init__(self, model: LoadedModel, ids: list[list[int]]) -> None:
        self.model = model
        self.ids = ids
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # its request gave up waiting: not worth a model call


class MicroBatcher:
    """Groups concurrent requests into one model call per model (one worker thread).

    The worker takes the first waiting request, then every request already queued (up to
    ``max_batch`` sessions; optionally waiting ``wait_s`` for more), runs each model's
    group in one call and hands every request its rows. Under load, requests arriving
    during a model call form the next batch, so batching adds no wait at low load.

    :param name: the endpoint's name (names the worker thread).
    :param max_batch: most sessions one model call serves.
    :param wait_s: how long the first request of a batch waits for more, in seconds.
    """

    def __init__(self, name: str, max_batch: int, wait_s: float) -> None:
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.calls = 0
        self.rows = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._held: _Job | None = None
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, model: LoadedModel, ids: list[list[int]], timeout: float | None = None
               ) -> dict[str, np.ndarray]:
        """Predict ``ids`` with ``model`` in the next batch; blocks until it ran.

        :param model: the model this request runs on (a swap may happen meanwhile).
        :param ids: one id list per session.
        :param timeout: most seconds to wait for it (None: as long as it takes).
        :return: this request's rows of :meth:`LoadedModel.predict`.
        :raises PredictTimeout: the model call did not come back within ``timeout``.
        :raises Exception: whatever the model call raised.
        """
        job = _Job(model, ids)
        self._queue.put(job)
        if not job.done.acquire(timeout=-1 if timeout is None else timeout):  # the worker releases
            job.abandoned = True
            raise PredictTimeout(f"the model call did not come back within {timeout:g} s.")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def close(self) -> None:
        """Finish the batch in progress and stop the worker thread."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _next(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout == 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _work(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            batch, rows = [first], len(first.ids)
            deadline = time.perf_counter() + self.wait_s
            while rows < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    job = self._next(remaining if remaining > 0 else 0)
                except queue.Empty:
                    break
                if job is None:  # closing: finish this batch, then stop
                    self._queue.put(None)
                    break
                if rows + len(job.ids) > self.max_batch:
                    self._held = job  # first of the next batch
                    break
                batch.append(job)
                rows += len(job.ids)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        by_model: dict[int, list[_Job]] = {}
        for job in batch:  # a swap may have happened mid-batch: each job keeps its model
            if job.abandoned:
                job.done.release()
                continue
            by_model.setdefault(id(job.model), []).append(job)
        for jobs in by_model.values():
            try:
                ids = [row for job in jobs for row in job.ids]
                out = jobs[0].model.predict(ids)
                self.calls += 1
                self.rows += len(ids)
                lo = 0
                for job in jobs:
                    hi = lo + len(job.ids)
                    job.result = {name: value[lo:hi] for name, value in out.items()}
                    lo = hi
            except BaseException as exc:  # noqa: BLE001  (handed to the waiting requests)
                for job in jobs:
                    job.error = exc
            finally:
                for job in jobs:
                    job.done.release()
