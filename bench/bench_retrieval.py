"""Open-collection QA on a SQuAD-format file seen as a document collection (COVID-QA dev by default).

    python -m bench.bench_retrieval                                  # bm25, dense, hybrid (+ rank-bm25)
    python -m bench.bench_retrieval --data_file ../shared/data/squad-v1.1-dev.json
    python -m bench.bench_retrieval --model /tmp/squad-qa --max_questions 100   # + end-to-end F1 per retriever

Retrieval: every question is searched over the passages of all documents (100 words,
25 overlap); recall@k = the share of questions whose gold document owns one of the top k
passages. bm25 (bm25s, sparse matrices), dense (all-MiniLM-L6-v2 sentence embeddings,
exact cosine search) and hybrid (the two fused by reciprocal rank) are what the server
offers (--retriever); rank-bm25 (plain Python BM25Okapi) is the reference BM25. Index
build time (embedding time for dense) and median query time are reported for each.

End to end (with --model): the top answer of DocumentQA (retrieval, then reading the top
passages) with each retriever, against the reader given the gold context (the whole gold
document read window by window, as evaluation reads it): EM/F1 on the same questions.
Prints JSON; saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import json
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


def with_retriever(retriever, questions) -> tuple[list[list[str]], dict]:
    """Ranked gold-candidate documents of each question and the median query time."""
    ranked, seconds = [], []
    for question in questions:
        started = time.perf_counter()
        hits = retriever.search(question, max(KS))
        seconds.append(time.perf_counter() - started)
        ranked.append([h.passage.document for h in hits])
    return ranked, {"query_ms_median": round(1000 * statistics.median(seconds), 3),
                    "query_ms_p95": round(1000 * float(np.percentile(seconds, 95)), 3)}


def server_retrievers(passages, embedder: str | None) -> tuple[dict, dict]:
    """The three retrievers the server offers over these passages, and what building each cost."""
    from slmqa.serving.embedding import SentenceEncoder
    from slmqa.serving.index import encode_passages
    from slmqa.serving.retrieval import BM25Retriever, DenseRetriever, HybridRetriever

    started = time.perf_counter()
    bm25 = BM25Retriever(passages)
    bm25_s = time.perf_counter() - started
    encoder = SentenceEncoder(embedder)
    started = time.perf_counter()
    embeddings = encode_passages(encoder, passages)
    embed_s = time.perf_counter() - started
    dense = DenseRetriever(passages, embeddings, encoder)
    retrievers = {"bm25": bm25, "dense": dense, "hybrid": HybridRetriever(bm25, dense)}
    costs = {"bm25": {"index_s": round(bm25_s, 3)}, "dense": {"index_s": round(embed_s, 3)},
             "hybrid": {"index_s": round(bm25_s + embed_s, 3)}}
    return retrievers, costs


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


def end_to_end(model: str, documents, queries, passages: int, runtime, retrievers: dict, always_answer: bool) -> dict:
    """EM/F1 of retrieval + reading (each retriever) against reading the gold document, same reader, same questions."""
    from dataclasses import asdict, replace

    from slmqa.serving.docqa import DocumentQA, Options
    from slmqa.serving.documents import Passage
    from slmqa.serving.retrieval import Hit
    from slmqa.settings import model_settings

    settings = model_settings(model)[0]
    if always_answer:  # these questions all have answers: compare retrievers without the model's abstentions
        settings = replace(settings, version_2_with_negative=False)
    qa = DocumentQA(model, "-", runtime=runtime, options=Options(passages=passages, retriever="bm25"), documents=documents,
                    settings=settings)
    open_collection = {}
    for name, retriever in retrievers.items():
        started = time.perf_counter()
        open_answers, in_gold = {}, 0
        for query in queries:
            reading = qa.reader.read([query.question], [retriever.search(query.question, passages)], top_k=1)[0]
            open_answers[query.id] = reading.answers[0].text if reading.answers else ""
            in_gold += bool(reading.answers) and reading.answers[0].document == query.document
        open_s = time.perf_counter() - started
        open_collection[name] = {**f1_of(open_answers, queries), "seconds_per_question": round(open_s / len(queries), 3),
                                 "top_answer_from_gold_document": round(in_gold / len(queries), 3)}
    started = time.perf_counter()
    gold_answers = {}
    for query in queries:
        text = qa.documents[query.document].text
        whole = Hit(Passage(query.document, 0, len(text), text), 0.0)
        reading = qa.reader.read([query.question], [[whole]], top_k=1)[0]
        gold_answers[query.id] = reading.answers[0].text if reading.answers else ""
    gold_s = time.perf_counter() - started
    return {
        "backend": qa.backend.name, "passages_read": passages, "settings": asdict(qa.settings),
        "open_collection": open_collection,
        "gold_context": {**f1_of(gold_answers, queries), "seconds_per_question": round(gold_s / len(queries), 3)},
    }


def main(argv: list[str] | None = None) -> int:
    from slmqa.serving.documents import passages_of

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_file", default=str(SHARED / "covid-qa-dev.json"))
    p.add_argument("--model", help="Also measure end-to-end EM/F1 with this model.")
    p.add_argument("--max_questions", type=int, help="End to end: only the first N questions (retrieval uses all).")
    p.add_argument("--passages", type=int, default=8, help="End to end: passages read per question.")
    p.add_argument("--embedder", help="Sentence encoder for dense/hybrid (default: all-MiniLM-L6-v2).")
    p.add_argument("--max_queries", type=int, help="Retrieval: only the first N questions.")
    p.add_argument("--always_answer", action="store_true", help="End to end: read without the model's no-answer rule.")
    add_runtime_arguments(p)
    p.set_defaults(backend="onnx", dtype="int8")  # the fastest CPU runtime (bench/README.md)
    args = p.parse_args(argv)
    path = Path(args.data_file)
    if not path.is_file():
        raise SystemExit(f"{path} not found: this benchmark needs ../shared/data (see bench/README.md).")
    documents, queries = load_collection(path)
    passages = passages_of(documents)
    searched = queries[: args.max_queries]
    questions, gold = [q.question for q in searched], [q.document for q in searched]
    retrievers, costs = server_retrievers(passages, args.embedder)
    retrieval = {}
    for name, retriever in retrievers.items():
        ranked, timing = with_retriever(retriever, questions)
        retrieval[name] = {**recall_at(ranked, gold), **costs[name], **timing}
    ranked, timing = with_rank_bm25(passages, questions)
    retrieval["rank_bm25"] = {**recall_at(ranked, gold), **timing}
    print(json.dumps({"retrieval": retrieval}), file=sys.stderr, flush=True)  # kept even if the end-to-end part fails
    result = {
        "benchmark": "retrieval",
        "command": " ".join(["python -m bench.bench_retrieval", *(argv if argv is not None else sys.argv[1:])]),
        "data_file": str(path), "documents": len(documents), "passages": len(passages), "questions": len(searched),
        "passage_words": 100, "passage_overlap": 25, "retrieval": retrieval,
    }
    if args.model:
        chosen = queries[: args.max_questions]
        result["end_to_end"] = {"questions": len(chosen), **end_to_end(args.model, documents, chosen, args.passages,
                                                                          runtime_from_args(args), retrievers, args.always_answer)}
    publish({**result, "machine": machine()}, "retrieval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
