"""A SQuAD-format file seen as a document collection: its contexts are the documents, its questions the queries.

Shared by the document-QA benchmarks. Each question keeps the name of the document that
holds its gold context, so retrieval can be scored (is the gold document retrieved?) and
answers can be scored against the gold texts with the official SQuAD v1.1 F1.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
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
