"""Serve concurrent questions with one model: a single worker thread answers them in small batches.

The model is not safe to call from several threads at once, and on a CPU a batch of
windows from several questions costs much less than the same windows one question at a
time. So every request is queued, and one worker thread takes what is waiting (up to
`max_batch` questions, waiting at most `max_wait_s` for more after the first) and answers
it with one call. The queue is bounded: when it is full a request is refused at once
(the server says 503) instead of piling up without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_STOP = object()


class Busy(RuntimeError):
    """Too many questions are waiting; try again later."""


@dataclass
class Stats:
    """Counters for /health: how much batching actually happened."""

    questions: int = 0
    batches: int = 0
    largest_batch: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, size: int, seconds: float) -> None:
        with self.lock:
            self.questions += size
            self.batches += 1
            self.largest_batch = max(self.largest_batch, size)
            self.seconds += seconds

    def to_json(self) -> dict:
        with self.lock:
            return {"questions": self.questions, "batches": self.batches, "largest_batch": self.largest_batch,
                    "model_seconds": round(self.seconds, 3)}


class Batcher:
    """Queue of (question, top_k) answered by `answer_many(questions, top_k)` on one worker thread."""

    def __init__(
        self,
        answer_many: Callable[[list[str], int], list],
        max_batch: int = 8,
        max_wait_s: float = 0.005,
        max_pending: int = 64,
    ):
        if max_batch < 1 or max_pending < 1:
            raise ValueError(f"max_batch and max_pending must be >= 1; got {max_batch}, {max_pending}.")
        self.answer_many, self.max_batch, self.max_wait_s = answer_many, max_batch, max_wait_s
        self.pending: queue.Queue = queue.Queue(maxsize=max_pending)
        self.stats = Stats()
        self.worker = threading.Thread(target=self._run, name="qa-batcher", daemon=True)
        self.worker.start()

    def submit(self, question: str, top_k: int) -> Future:
        """A future for the question's answers; raises Busy when the queue is full."""
        future: Future = Future()
        try:
            self.pending.put_nowait((question, top_k, future))
        except queue.Full:
            raise Busy(f"{self.pending.maxsize} questions are already waiting") from None
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the questions already queued."""
        self.pending.put(_STOP)
        self.worker.join(timeout)

    def _take_batch(self) -> tuple[list, bool]:
        """The next batch (blocking for its first item) and whether the stop marker was seen."""
        first = self.pending.get()
        if first is _STOP:
            return [], True
        batch, deadline = [first], time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                item = self.pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            live = [item for item in batch if item[2].set_running_or_notify_cancel()]
            if live:
                self._answer(live)

    def _answer(self, batch: list) -> None:
        """One model call for the whole batch (at the largest top_k asked), each future cut to its own top_k."""
        started = time.perf_counter()
        try:
            readings = self.answer_many([question for question, _, _ in batch], max(k for _, k, _ in batch))
        except Exception as err:  # reported to every waiting request; the worker keeps serving
            logger.exception("Answering a batch of %d questions failed", len(batch))
            for _, _, future in batch:
                future.set_exception(err)
            return
        self.stats.add(len(batch), time.perf_counter() - started)
        for (_, top_k, future), reading in zip(batch, readings):
            future.set_result(reading.limited(top_k))
