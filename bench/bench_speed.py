"""Per-question latency of document QA with 8 passages, and how far each speed lever moves the answers.

    python -m bench.bench_speed --model ../shared/models/general-qa-minilm \
        --data_file ../shared/data/covid-qa-dev.json [--arms torch onnx-int8+unfused onnx-int8 ...]

The data file's contexts are the collection and its questions are asked one at a time
through DocumentQA (retrieval, reading, decoding: what a request costs), the arms taking
turns question by question (rotating which goes first), so load on a shared machine hits
them alike. An arm is a runtime (`torch`, `torch-bfloat16`, `onnx`, `onnx-int8`, as
Runtime.name spells them; ONNX graphs are fused by default) plus `+` modifiers:

    unfused      the ONNX graph without ONNX Runtime's transformer fusions (what ran before)
    threads=N    ONNX Runtime intra-op threads (default: all cores)
    nospin       ONNX Runtime worker threads do not spin while waiting for work
    noarena      ONNX Runtime without its CPU memory arena
    batch=N      windows per model call (Options.batch_size; default 32: one call per question)
    ratio=R      Options.passage_ratio (read fewer passages when retrieval is confident; without
                 it an arm reads all --passages, although serving reads hybrid's with 0.9)
    floor=N      Options.min_passages (with ratio; default 3)

Retrieval is serving's default (`--retriever` to change it); the passages are embedded once
and shared by all arms. `--v1` reads without "no answer" (a v2 model that abstains on most
questions would make the comparison trivial). Reports per arm: latency p50/p95/mean,
passages read per question, EM/F1 against the gold answers, and the share of questions whose
top answer (text, or no answer) equals the reference arm's (the first, torch fp32 by
default) and, where a `torch` arm with the same reading modifiers ran, the share equal to
that arm's (what precision alone changes), with the 1-minute load average seen during the run. Prints JSON; saves it under
bench/results/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import machine, publish
from bench.bench_backends import RUNTIMES
from bench.collection import ask_in_turns, f1_of, load_collection, percentiles

DEFAULT_ARMS = ["torch", "onnx-int8+unfused", "onnx-int8", "onnx+unfused", "onnx", "onnx-int8+batch=4",
                "onnx-int8+threads=1", "onnx-int8+nospin", "onnx+ratio=0.8", "onnx-int8+ratio=0.8"]


@dataclass(frozen=True)
class Arm:
    name: str
    runtime: str
    fused: bool = True
    threads: int | None = None
    session_config: dict = field(default_factory=dict)
    arena: bool = True
    options: dict = field(default_factory=dict)


def parse_arm(spec: str) -> Arm:
    """`runtime+modifier+...` (see the module docstring) as an Arm; ValueError for an unknown part."""
    runtime, *modifiers = spec.split("+")
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} in {spec!r}; choose one of {', '.join(RUNTIMES)}")
    kwargs: dict = {"session_config": {}, "options": {}}
    for modifier in modifiers:
        key, _, value = modifier.partition("=")
        if key == "unfused" and not value:
            kwargs["fused"] = False
        elif key == "nospin" and not value:
            kwargs["session_config"]["session.intra_op.allow_spinning"] = "0"
        elif key == "noarena" and not value:
            kwargs["arena"] = False
        elif key == "threads" and value:
            kwargs["threads"] = int(value)
        elif key == "batch" and value:
            kwargs["options"]["batch_size"] = int(value)
        elif key == "ratio" and value:
            kwargs["options"]["passage_ratio"] = float(value)
        elif key == "floor" and value:
            kwargs["options"]["min_passages"] = int(value)
        else:
            raise ValueError(f"unknown modifier {modifier!r} in {spec!r}")
    onnx_only = not kwargs.get("fused", True) or kwargs.get("threads") or kwargs["session_config"] or "arena" in kwargs
    if onnx_only and RUNTIMES[runtime].backend != "onnx":
        raise ValueError(f"{spec!r}: unfused/threads/nospin/noarena are ONNX Runtime settings")
    return Arm(spec, runtime, **kwargs)


def share_one_collection() -> None:
    """Every arm reads the same documents cut the same way: embed the passages once, not once per arm (~1 min each)."""
    from slmqa.serving import docqa

    original, built = docqa.collection_of, []

    def collection_once(*args, **kwargs):
        if not built:
            built.append(original(*args, **kwargs))
        return built[0]

    docqa.collection_of = collection_once


def build(arm: Arm, model: str, documents, passages: int, settings=None, retriever: str | None = None):
    """A DocumentQA over the documents for one arm (its backend rebuilt when the arm changes ONNX Runtime's session)."""
    import onnxruntime as ort

    from slmqa.inference.backends import OnnxBackend
    from slmqa.serving.docqa import DocumentQA, Options

    runtime = RUNTIMES[arm.runtime]
    options = Options(passages=passages, **({"retriever": retriever} if retriever else {}), **{"passage_ratio": 0.0, **arm.options})
    qa = DocumentQA(model, "-", runtime=runtime, options=options, documents=documents, settings=settings)
    if runtime.backend == "onnx":
        backend = qa.backend if arm.fused else OnnxBackend(model, runtime.resolve(), threads=arm.threads, fused=False)
        if arm.threads or arm.session_config or not arm.arena:
            settings = ort.SessionOptions()
            settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            settings.intra_op_num_threads = arm.threads or backend.session.get_session_options().intra_op_num_threads
            settings.enable_cpu_mem_arena = arm.arena
            settings.log_severity_level = 3
            for key, value in arm.session_config.items():
                settings.add_session_config_entry(key, value)
            backend.session = ort.InferenceSession(str(backend.path), settings, providers=["CPUExecutionProvider"])
        qa.backend = qa.reader.backend = backend
    return qa


def load_average() -> float:
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


def main(argv: list[str] | None = None) -> int:
    # Before torch loads its OpenMP: otherwise torch's worker thread busy-waits at its barrier while ONNX
    # Runtime runs in this process, taking one of the cores from the ONNX arms (gdb: gomp_barrier_wait_end at 100%).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data_file", required=True, help="SQuAD-format file: contexts = documents, questions = queries.")
    p.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, help="The first is the reference of 'same top answer'.")
    p.add_argument("--max_questions", type=int, default=None)
    p.add_argument("--passages", type=int, default=8)
    p.add_argument("--retriever", help="bm25, dense or hybrid (default: serving's default).")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--v1", action="store_true", help="Read without 'no answer' whatever the model's qa_settings.json says "
                   "(a v2 model that abstains on most questions makes 'same top answer' trivially high).")
    args = p.parse_args(argv)

    from slmqa.settings import resolve_settings

    arms = [parse_arm(spec) for spec in args.arms]
    documents, queries = load_collection(Path(args.data_file), args.max_questions)
    settings = resolve_settings({"version_2_with_negative": False}, args.model)[0] if args.v1 else None
    share_one_collection()
    systems = {arm.name: build(arm, args.model, documents, args.passages, settings, args.retriever) for arm in arms}
    loads = [load_average()]

    def load_now(done: int) -> str:
        loads.append(load_average())
        return f"load {loads[-1]:.2f}"

    turns = ask_in_turns(systems, queries, args.warmup, progress=load_now)
    loads.append(load_average())
    names, seconds, answers, read = list(systems), turns.seconds, turns.answers, turns.passages_read

    reference = names[0]
    arms_by_name = {arm.name: arm for arm in arms}
    today = next((n for n in names if n == "onnx-int8+unfused"), None)
    results = {}
    for name in names:
        scores = f1_of(answers[name], queries)
        row = {**percentiles(seconds[name]), "passages_read": round(statistics.fmean(read[name]), 2),
               "no_answer": sum(not text for text in answers[name].values()),
               "exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2),
               f"same_top_answer_as_{reference}": round(
                   sum(answers[name][q.id] == answers[reference][q.id] for q in queries) / len(queries), 3),
               f"p50_speedup_vs_{reference}": round(percentiles(seconds[reference])["p50_ms"] / percentiles(seconds[name])["p50_ms"], 2)}
        if today:
            row["p50_speedup_vs_onnx-int8+unfused"] = round(percentiles(seconds[today])["p50_ms"] / row["p50_ms"], 2)
        twin = fp32_twin(arms_by_name[name], arms)
        if twin and twin != name:  # the precision's own effect: fp32 reading the same passages
            row["same_top_answer_as_fp32_reading_the_same_passages"] = round(
                sum(answers[name][q.id] == answers[twin][q.id] for q in queries) / len(queries), 3)
        results[name] = row
    first = systems[names[0]]
    publish({
        "benchmark": "speed",
        "command": " ".join(["python -m bench.bench_speed", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model, "data_file": args.data_file, "questions": len(queries), "documents": len(documents),
        "passages": len(first.passages), "passages_per_question": args.passages, "retriever": first.options.retriever,
        "reference": reference, "v1": args.v1,
        "settings": first.settings.describe(),
        "graphs": {name: Path(qa.backend.path).name for name, qa in systems.items() if hasattr(qa.backend, "path")},
        "load_average_1min": {"min": min(loads), "max": max(loads), "median": statistics.median(loads)},
        "results": results,
        "machine": machine(torch=torch.__version__, torch_threads=torch.get_num_threads(), cpu=cpu_model(),
                           omp_wait_policy=os.environ.get("OMP_WAIT_POLICY")),
    }, "speed")
    return 0


def fp32_twin(arm: Arm, arms: list[Arm]) -> str | None:
    """The torch float32 arm that reads passages as `arm` does (same Options), if one was run."""
    return next((other.name for other in arms if other.runtime == "torch" and other.options == arm.options), None)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "")


if __name__ == "__main__":
    sys.exit(main())
