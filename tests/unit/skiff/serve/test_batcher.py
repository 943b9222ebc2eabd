"""The micro-batcher: concurrent requests share model calls and each gets its own rows."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from serving_models import SKUS, invoke
from skiff.serve.batcher import MicroBatcher
from skiff.serve.server import Endpoint


class EchoModel:
    """Answers each id list with its first id, and blocks its first call until released."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[int] = []

    def predict(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        self.entered.set()
        assert self.release.wait(10)
        if any(row == [-1] for row in ids):
            raise RuntimeError("planted failure")
        self.batches.append(len(ids))
        return {"first": np.array([row[0] for row in ids])}


def test_requests_queued_during_a_call_form_the_next_batch() -> None:
    model, batcher = EchoModel(), MicroBatcher("t", max_batch=8, wait_s=0)
    answers: dict[int, np.ndarray] = {}
    first = threading.Thread(target=lambda: answers.update({0: batcher.submit(model, [[0]])}))
    first.start()
    assert model.entered.wait(10)  # the first request is inside the model call
    rest = [threading.Thread(target=lambda i=i: answers.update(
        {i: batcher.submit(model, [[i], [i + 100]])})) for i in range(1, 4)]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while batcher._queue.qsize() < 3 and time.monotonic() < deadline:  # all three queued
        time.sleep(0.01)
    model.release.set()
    for t in [first, *rest]:
        t.join(10)
    assert model.batches == [1, 6] and (batcher.calls, batcher.rows) == (2, 7)
    for i in range(1, 4):
        assert answers[i]["first"].tolist() == [i, i + 100]
    with pytest.raises(RuntimeError, match="planted failure"):  # a failure reaches its caller
        batcher.submit(model, [[-1]])
    batcher.close()


def test_micro_batching_serves_concurrent_requests_correctly(bundles: SimpleNamespace) -> None:
    batched = Endpoint("skiff-rec", max_batch=32)
    batched.swap(bundles.rec)
    single = Endpoint("skiff-rec-1", max_batch=1)
    single.swap(bundles.rec)
    rng = np.random.default_rng(0)
    sessions = [[SKUS[i] for i in rng.integers(0, len(SKUS), rng.integers(1, 8))]
                for _ in range(64)]
    expected = [invoke(single, [s])[1] for s in sessions]
    results: dict[int, dict] = {}
    barrier = threading.Barrier(16)

    def client(worker: int) -> None:
        barrier.wait()
        for i in range(worker, len(sessions), 16):
            results[i] = invoke(batched, [sessions[i]])[1]

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i, want in enumerate(expected):
        got = results[i]["predictions"][0]
        assert got["items"] == want["predictions"][0]["items"], i
        np.testing.assert_allclose(got["scores"], want["predictions"][0]["scores"], atol=1e-5)
    stats = batched.describe()["batches"]
    assert stats["rows"] == len(sessions) and stats["calls"] <= len(sessions)
    batched.close()
    single.close()
