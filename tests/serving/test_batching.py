"""slmqa.serving.batching: one worker answers queued questions in batches, cut to each request's top_k."""

from __future__ import annotations

import threading

import pytest

from slmqa.serving.batching import Batcher, Busy
from slmqa.serving.reader import Reading


def readings(questions: list[str], top_k: int) -> list[Reading]:
    return [Reading(q, [f"{q}-{i}" for i in range(top_k)], False, 1) for q in questions]


def test_waiting_questions_are_answered_together_and_cut_to_their_top_k():
    calls, gate = [], threading.Event()

    def answer_many(questions, top_k):
        gate.wait(5)  # hold the first call so that the others queue up behind it
        calls.append((list(questions), top_k))
        return readings(questions, top_k)

    batcher = Batcher(answer_many, max_batch=3, max_wait_s=0.01)
    futures = [batcher.submit(f"q{i}", k) for i, k in enumerate([1, 2, 3, 1])]
    gate.set()
    results = [f.result(5) for f in futures]
    batcher.close()
    assert [r.answers for r in results] == [["q0-0"], ["q1-0", "q1-1"], ["q2-0", "q2-1", "q2-2"], ["q3-0"]]
    assert sum(len(q) for q, _ in calls) == 4 and max(len(q) for q, _ in calls) > 1
    assert batcher.stats.to_json()["questions"] == 4


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    def answer_many(questions, top_k):
        if "boom" in questions:
            raise RuntimeError("model failed")
        return readings(questions, top_k)

    batcher = Batcher(answer_many, max_batch=1)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit("boom", 1).result(5)
    assert batcher.submit("fine", 1).result(5).answers == ["fine-0"]
    batcher.close()


def test_a_full_queue_refuses_at_once():
    gate = threading.Event()
    batcher = Batcher(lambda q, k: gate.wait(5) and readings(q, k), max_batch=1, max_pending=1)
    first = batcher.submit("a", 1)
    deadline = threading.Event()
    while batcher.pending.qsize():  # the worker has taken "a" and is blocked in it
        deadline.wait(0.01)
    batcher.submit("b", 1)
    with pytest.raises(Busy):
        batcher.submit("c", 1)
    gate.set()
    assert first.result(5).answers == ["a-0"]
    batcher.close()
