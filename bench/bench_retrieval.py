"""Open-collection QA on a SQuAD-format file seen as a document collection (COVID-QA dev by default).

    python -m bench.bench_retrieval                                  # retrieval only: bm25s vs rank-bm25
    python -m bench.bench_retrieval --model /tmp/squad-qa --max_questions 100   # + end-to-end F1

Retrieval: every question is searched over the passages of all documents (100 words,
25 overlap); recall@k = the share of questions whose gold document owns one of the top k
passages. bm25s (what the server uses) and rank-bm25 (plain Python BM25Okapi) get the
same terms; index build time and query time are reported for both.

End to end (with --model): the top answer of DocumentQA (retrieval, then reading the top
passages) against the reader given the gold context (the whole gold document read
window by window, as evaluation reads it): EM/F1 of each on the same questions.
Prints JSON; saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench import machine, publish
from bench.collection import f1_of, load_collection
from slmqa.inference.runtime import add_runtime_arguments, runtime_from_args

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
KS = (1, 3, 5, 8, 10, 20, 50)


def recall_at(ranked_documents: list[list[str]], gold: list[str]) -> dict:
    """recall@k for each k in KS: gold document among the documents of the top k passages."""
    return {f"recall@{k}": round(float(np.mean([g in r[:k] for r, g in zip(ranked_documents, gold)])), 3) for k in KS}


def with_bm25s(passages, questions) -> tuple[list[list[str]], dict]:
    from slmqa.serving.retrieval import Retriever

    started = time.perf_counter()
    retriever = Retriever(passages)
    index_s = time.perf_counter() - started
    ranked, seconds = [], []
    for question in questions:
        started = time.perf_counter()
        hits = retriever.search(question, max(KS))
        seconds.append(time.perf_counter() - started)
        ranked.append([h.passage.document for h in hits])
    return ranked, {"index_s": round(index_s, 3), "query_ms_median": round(1000 * statistics.median(seconds), 3)}


def with_rank_bm25(passages, questions) -> tuple[list[list[str]], dict]:
    from rank_bm25 import BM25Okapi

    from slmqa.serving.retrieval import terms, top_indices

    started = time.perf_counter()
    index = BM25Okapi([terms(p.text) or ["\x00"] for p in passages])
    index_s = time.perf_counter() - started
    ranked, seconds = [], []
    for question in questions:
        started = time.perf_counter()
        order = top_indices(np.asarray(index.get_scores(terms(question))), max(KS))
        seconds.append(time.perf_counter() - started)
        ranked.append([passages[i].document for i in order.tolist()])
    return ranked, {"index_s": round(index_s, 3), "query_ms_median": round(1000 * statistics.median(seconds), 3)}


def end_to_end(model: str, documents, queries, passages: int, runtime) -> dict:
    """EM/F1 of retrieval + reading against reading the gold document, same reader, same questions."""
    from dataclasses import asdict

    from slmqa.serving.docqa import DocumentQA, Options
    from slmqa.serving.documents import Passage
    from slmqa.serving.retrieval import Hit

    qa = DocumentQA(model, "-", runtime=runtime, options=Options(passages=passages), documents=documents)
    started = time.perf_counter()
    open_answers = {}
    for query in queries:
        reading = qa.ask([query.question], top_k=1)[0]
        open_answers[query.id] = reading.answers[0].text if reading.answers else ""
    open_s = time.perf_counter() - started
    started = time.perf_counter()
    gold_answers = {}
    for query in queries:
        text = qa.documents[query.document].text
        whole = Hit(Passage(query.document, 0, len(text), text), 0.0)
        reading = qa.reader.read([query.question], [[whole]], top_k=1)[0]
        gold_answers[query.id] = reading.answers[0].text if reading.answers else ""
    gold_s = time.perf_counter() - started
    in_gold = sum(a.document == q.document for q in queries for a in qa.ask([q.question], top_k=1)[0].answers)
    return {
        "backend": qa.backend.name, "passages_read": passages, "settings": asdict(qa.settings),
        "open_collection": {**f1_of(open_answers, queries), "seconds_per_question": round(open_s / len(queries), 3),
                            "top_answer_from_gold_document": round(in_gold / len(queries), 3)},
        "gold_context": {**f1_of(gold_answers, queries), "seconds_per_question": round(gold_s / len(queries), 3)},
    }


def main(argv: list[str] | None = None) -> int:
    from slmqa.serving.documents import passages_of

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_file", default=str(SHARED / "covid-qa-dev.json"))
    p.add_argument("--model", help="Also measure end-to-end EM/F1 with this model.")
    p.add_argument("--max_questions", type=int, help="End to end: only the first N questions (retrieval uses all).")
    p.add_argument("--passages", type=int, default=8, help="End to end: passages read per question.")
    add_runtime_arguments(p)
    p.set_defaults(backend="onnx", dtype="int8")  # the fastest CPU runtime (bench/README.md)
    args = p.parse_args(argv)
    path = Path(args.data_file)
    if not path.is_file():
        raise SystemExit(f"{path} not found: this benchmark needs ../shared/data (see bench/README.md).")
    documents, queries = load_collection(path)
    passages = passages_of(documents)
    questions, gold = [q.question for q in queries], [q.document for q in queries]
    retrieval = {}
    for name, run in (("bm25s", with_bm25s), ("rank_bm25", with_rank_bm25)):
        ranked, timing = run(passages, questions)
        retrieval[name] = {**recall_at(ranked, gold), **timing}
    result = {
        "benchmark": "retrieval",
        "command": " ".join(["python -m bench.bench_retrieval", *(argv if argv is not None else sys.argv[1:])]),
        "data_file": str(path), "documents": len(documents), "passages": len(passages), "questions": len(queries),
        "passage_words": 100, "passage_overlap": 25, "retrieval": retrieval,
    }
    if args.model:
        chosen = queries[: args.max_questions]
        result["end_to_end"] = {"questions": len(chosen), **end_to_end(args.model, documents, chosen, args.passages, runtime_from_args(args))}
    publish({**result, "machine": machine()}, "retrieval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
