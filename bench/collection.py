"""A SQuAD-format file seen as a document collection: its contexts are the documents, its questions the queries.

Shared by the document-QA benchmarks. Each question keeps the name of the document that
holds its gold context, so retrieval can be scored (is the gold document retrieved?) and
answers can be scored against the gold texts with the official SQuAD v1.1 F1.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slmqa.data.formats import read_records
from slmqa.decoding.squad_metrics import squad_v1_scores
from slmqa.serving.documents import Document, squad_contexts


@dataclass(frozen=True)
class Query:
    id: str
    question: str
    answers: list[str]
    document: str  # name of the document holding the gold context


def load_collection(path: Path, max_questions: int | None = None) -> tuple[list[Document], list[Query]]:
    """Documents (distinct contexts, named like documents.py names them) and answerable questions."""
    documents = squad_contexts(path, path.name)
    by_context = {d.text: d.name for d in documents}
    queries = []
    for record in read_records(path):
        answers = record.get("answers") or []
        texts = answers.get("text", []) if isinstance(answers, dict) else [a.get("text") for a in answers]
        if texts and record.get("context") in by_context:
            queries.append(Query(str(record["id"]), record["question"].strip(), texts, by_context[record["context"]]))
    return documents, queries[:max_questions]


def f1_of(predictions: dict[str, str], queries: list[Query]) -> dict:
    """SQuAD v1.1 EM/F1 of predictions (id -> text) against the queries' gold answers."""
    return squad_v1_scores(predictions, {q.id: q.answers for q in queries})


def percentiles(seconds: list[float]) -> dict:
    """p50/p95/mean in milliseconds."""
    values = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1),
            "mean_ms": round(statistics.fmean(values), 1)}


@dataclass
class Turns:
    """What ask_in_turns measured, per system name: seconds per question, top answer text, passages read."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    passages_read: dict[str, list[int]] = field(default_factory=dict)


def ask_in_turns(systems: dict, queries: list[Query], warmup: int, every: int = 25,
                 progress: Callable[[int], str] | None = None) -> Turns:
    """Ask each DocumentQA every question, one at a time, after `warmup` questions each.

    The systems take turns question by question, and which goes first rotates, so load on a
    shared machine hits them alike. Every `every` questions a line goes to stderr (with
    `progress(done)`'s text appended, e.g. the load average).
    """
    for qa in systems.values():
        for query in queries[:warmup]:
            qa.ask([query.question], top_k=1)
    names = list(systems)
    turns = Turns({n: [] for n in names}, {n: {} for n in names}, {n: [] for n in names})
    for i, query in enumerate(queries):
        for name in names[i % len(names):] + names[: i % len(names)]:
            started = time.perf_counter()
            reading = systems[name].ask([query.question], top_k=1)[0]
            turns.seconds[name].append(time.perf_counter() - started)
            turns.answers[name][query.id] = reading.answers[0].text if reading.answers else ""
            turns.passages_read[name].append(reading.passages_read)
        if (i + 1) % every == 0:
            extra = f", {progress(i + 1)}" if progress else ""
            print(f"{i + 1}/{len(queries)} questions{extra}", file=sys.stderr, flush=True)
    return turns
