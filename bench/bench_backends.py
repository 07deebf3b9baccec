"""CPU inference runtimes on the same questions: torch fp32/int8/bf16, ONNX Runtime fp32 and int8.

    python -m bench.bench_backends --model /tmp/squad-qa --data_file /tmp/squad-split/eval.json \
        --max_questions 200 [--runtimes torch torch-int8 onnx onnx-int8 torch-bfloat16]

The data file's contexts are the document collection and its questions are asked one at a
time through DocumentQA (BM25 retrieval, reading, decoding: what a server request costs),
the backends taking turns question by question (rotating which goes first) so that load
changes on the machine hit all of them alike. Reports per backend: latency per question
(p50/p95), questions/s, EM/F1 against the gold answers, F1 change and share of identical
top answers against torch fp32, and the speed-up against it. Prints JSON; saves it under
bench/results/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import machine, publish
from bench.collection import ask_in_turns, f1_of, load_collection, percentiles
from slmqa.inference.runtime import Runtime

REFERENCE = "torch"
# The runtimes measured, by the names logs and /health give them (Runtime.name).
RUNTIMES = {
    "torch": Runtime("torch", "cpu", "float32"),
    "torch-int8": Runtime("torch", "cpu", "int8"),
    "onnx": Runtime("onnx", "cpu", "float32"),
    "onnx-int8": Runtime("onnx", "cpu", "int8"),
    "torch-bfloat16": Runtime("torch", "cpu", "bfloat16"),
}
DEFAULT_RUNTIMES = ["torch", "torch-int8", "onnx", "onnx-int8"]


def main(argv: list[str] | None = None) -> int:
    import torch

    from slmqa.serving.docqa import DocumentQA, Options

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data_file", required=True, help="SQuAD-format file: contexts = documents, questions = queries.")
    p.add_argument("--max_questions", type=int, default=200)
    p.add_argument("--runtimes", nargs="+", default=DEFAULT_RUNTIMES, choices=list(RUNTIMES))
    p.add_argument("--passages", type=int, default=8)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args(argv)

    documents, queries = load_collection(Path(args.data_file), args.max_questions)
    systems = {name: DocumentQA(args.model, "-", runtime=RUNTIMES[name], options=Options(passages=args.passages, retriever="bm25"),
                                documents=documents) for name in args.runtimes}
    turns = ask_in_turns(systems, queries, args.warmup, every=50)
    seconds, answers, names = turns.seconds, turns.answers, list(systems)

    results = {}
    for name in names:
        scores = f1_of(answers[name], queries)
        results[name] = {**percentiles(seconds[name]), "questions_per_s": round(len(queries) / sum(seconds[name]), 2),
                         "exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2)}
    if REFERENCE in results:
        base = results[REFERENCE]
        for name in names:
            row = results[name]
            row["speedup_vs_torch_fp32"] = round(row["questions_per_s"] / base["questions_per_s"], 2)
            row["f1_change_vs_torch_fp32"] = round(row["f1"] - base["f1"], 2)
            row["same_top_answer_as_torch_fp32"] = round(
                sum(answers[name][q.id] == answers[REFERENCE][q.id] for q in queries) / len(queries), 3)
    publish({
        "benchmark": "backends",
        "command": " ".join(["python -m bench.bench_backends", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model, "data_file": args.data_file, "questions": len(queries), "documents": len(documents),
        "passages_per_question": args.passages, "settings": systems[names[0]].settings.__dict__,
        "results": results,
        "machine": machine(torch=torch.__version__, torch_threads=torch.get_num_threads()),
    }, "backends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
