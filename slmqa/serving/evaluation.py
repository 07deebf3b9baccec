"""Measure the whole ask-your-documents path on the user's own labelled questions.

Two numbers decide what to improve: did retrieval bring the right document (recall@k:
the gold document among the documents of the top k passages), and did the reader answer
(EM/F1 over the retrieved passages, as served, against EM/F1 when it is given the gold
context, which bounds what better retrieval could buy). Also: how often the model
abstains, and the latency of each question (retrieval and reading) at p50/p95.

A labelled question's gold document is the folder document its title names (the export of
labels titles each article with its document), else the one whose text contains its
context; a question whose context is in no document is counted, not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slmqa.decoding.squad_metrics import squad_v2_scores
from slmqa.serving.documents import Document, Passage
from slmqa.serving.retrieval import Hit

RECALL_AT = (1, 3, 5, 8, 20)
SCORE_KEYS = ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total")


@dataclass(frozen=True)
class LabelledQuestion:
    id: str
    question: str
    answers: list[str]  # empty: unanswerable
    context: str
    title: str | None = None


def labelled_questions(records: list[dict]) -> list[LabelledQuestion]:
    """Checked records (slmqa.data.checks: answers as {"text": [...]}) as labelled questions."""
    return [
        LabelledQuestion(str(r["id"]), r["question"], list(r["answers"]["text"]), r["context"], r.get("title") or None)
        for r in records
    ]


def gold_document(item: LabelledQuestion, documents: dict[str, Document]) -> str | None:
    """The folder document a question was asked on: named by its title, else holding its context."""
    if item.title in documents and item.context in documents[item.title].text:
        return item.title
    return next((name for name, document in documents.items() if item.context in document.text), None)


def _scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """SQuAD v2.0 EM/F1 of final predictions ("" = no answer); best-threshold keys do not apply here."""
    if not references:
        return {}
    scores = squad_v2_scores(predictions, references, {qid: 0.0 for qid in references})
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in scores.items() if key in SCORE_KEYS}


def _milliseconds(seconds: list[float]) -> dict:
    values = np.asarray(seconds) * 1000 if seconds else np.zeros(1)
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1)}


def evaluate_documents(qa, items: list[LabelledQuestion], progress: Callable | None = None) -> dict:
    """Retrieval recall@k, reader EM/F1 over retrieved passages and given the gold context, abstentions, latency.

    `qa`: a DocumentQA (its retriever, reader and settings are what is measured).
    """
    depth = max(max(RECALL_AT), qa.options.passages)
    references, served, given_gold, rows = {}, {}, {}, []
    found_at = {k: 0 for k in RECALL_AT}
    located, abstained, seconds, read = 0, 0, [], []
    for item in progress(items) if progress else items:
        gold = gold_document(item, qa.documents)
        started = time.perf_counter()
        ranked = qa.retrieve(item.question, depth)
        reading = qa.reader.read([item.question], [qa.to_read(ranked)], top_k=1)[0]
        seconds.append(time.perf_counter() - started)
        answer = reading.answers[0].text if reading.answers else ""
        references[item.id], served[item.id] = item.answers, answer
        abstained += not reading.answers
        read.append(reading.passages_read)
        documents = [hit.passage.document for hit in ranked]
        rank = documents.index(gold) + 1 if gold in documents else None
        if gold is not None:
            located += 1
            for k in RECALL_AT:
                found_at[k] += rank is not None and rank <= k
            start = qa.documents[gold].text.index(item.context)
            whole = Hit(Passage(gold, start, start + len(item.context), item.context), 0.0)
            gold_reading = qa.reader.read([item.question], [[whole]], top_k=1)[0]
            given_gold[item.id] = gold_reading.answers[0].text if gold_reading.answers else ""
        rows.append({"id": item.id, "question": item.question, "gold_answers": item.answers, "gold_document": gold,
                     "gold_document_rank": rank, "answer": answer,
                     "answer_document": reading.answers[0].document if reading.answers else None,
                     "answer_given_gold_context": given_gold.get(item.id)})
    return {
        "questions": len(items),
        "retriever": qa.options.retriever,
        "passages": qa.options.passages,
        "passage_ratio": qa.options.reading_ratio,
        "mean_passages_read": round(float(np.mean(read)), 2) if read else None,
        "gold_document_found": located,
        "gold_document_not_in_folder": len(items) - located,
        "retrieval": {f"recall@{k}": round(found_at[k] / located, 3) if located else None for k in RECALL_AT},
        "reader_over_retrieved": _scores(served, references),
        "reader_given_gold_context": _scores(given_gold, {qid: references[qid] for qid in given_gold}),
        "no_answer_rate": round(abstained / len(items), 3) if items else None,
        "latency": _milliseconds(seconds),
        "per_question": rows,
    }
