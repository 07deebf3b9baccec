"""Inference speed: sorted, dynamically padded batches (and int8) vs unsorted pad-to-max batches.

    python -m bench.bench_inference --model bench/results/accuracy/squad-full \
        --data_file bench/results/accuracy/data/squad-eval.json --max_examples 400 [--reps 3]
    python -m bench.bench_inference --quick          # 200 questions, 1 rep

Both of the project's prediction paths are timed on the same windows, with the same model,
alternating A/B every repetition:

* `qa_predict`: what qa_predict.py runs, `slmqa.inference.logits.window_logits` over a torch
  backend (windows sorted longest first, each batch padded to its own longest window,
  `torch.inference_mode`) against a plain loop over the windows in data order, each padded to
  max_seq_length, under `torch.no_grad` (the reference recipe). Optionally also with
  `--dtype int8` (CPU dynamic quantization) and `--dtype bfloat16` (weights cast to bfloat16:
  fast on CPUs with AVX512-BF16/AMX).
* `trainer`: `run_qa.py --do_predict`'s `QATrainer.predict` as it is, against the same
  trainer with the length sort switched off and features padded to max_seq_length.

Each timing covers the model and span decoding (examples/s = questions per second). Every
arm's predictions are compared with the reference arm's, and EM/F1 against the gold
answers are reported. Prints one JSON object; saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import process
from bench import machine, publish
from postprocess import PostProcess
from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.formats import read_records
from slmqa.data.windows import Windower
from slmqa.inference.backends import load_backend
from slmqa.inference.logits import MODEL_INPUTS, window_logits
from slmqa.inference.runtime import Runtime
from slmqa.modeling.loading import load_tokenizer
from slmqa.settings import resolve_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = {"squad": SHARED / "squad-v1.1-dev.json", "covid_qa": SHARED / "covid-qa-dev.json",
        "policyqa": SHARED / "policyqa-dev.json"}


def padded_loop_logits(model, tokenizer, features, batch_size: int, max_length: int) -> list[tuple]:
    """The reference recipe: data order, every window padded to max_length, no_grad."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features.column_names]
    columns = {name: list(features[name]) for name in names}
    lengths = [len(ids) for ids in columns["input_ids"]]
    results = []
    model.eval()
    with torch.no_grad():
        for begin in range(0, len(lengths), batch_size):
            rows = [{n: columns[n][i] for n in names} for i in range(begin, min(begin + batch_size, len(lengths)))]
            batch = tokenizer.pad(rows, padding="max_length", max_length=max_length, return_tensors="pt")
            output = model(**batch)
            start, end = output.start_logits.numpy(), output.end_logits.numpy()
            for row in range(len(rows)):
                length = lengths[begin + row]
                results.append((start[row, :length], end[row, :length]))
    return results


def decode(post: PostProcess, examples, features, logits):
    return post.decode(examples, features, ([s for s, _ in logits], [e for _, e in logits]))


def backend_logits(backend, tokenizer, features, batch_size: int) -> list[tuple]:
    """What qa_predict.py runs: windows sorted longest first, dynamically padded (slmqa.inference.logits)."""
    starts, ends = window_logits(backend, {n: list(features[n]) for n in MODEL_INPUTS if n in features.column_names},
                                 tokenizer.pad_token_id or 0, batch_size)
    return list(zip(starts, ends))


def trainer_predict(model, tokenizer, post, examples, features, batch_size: int, sort: bool):
    """QATrainer.predict as run_qa.py --do_predict calls it; the sort can be switched off."""
    from transformers import DataCollatorWithPadding, TrainingArguments

    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_eval_batch_size=batch_size, report_to="none", disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
        trainer = process.QATrainer(model=model, args=args, data_collator=collator, post_process=post)
        original = process.longest_first
        if not sort:
            process.longest_first = lambda f: (f, np.arange(len(f)))
        try:
            decoded, _ = trainer.predict(features, examples)
        finally:
            process.longest_first = original
    return decoded


def timed(function) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def agreement(reference: dict, other: dict) -> int:
    return sum(reference[key] == other[key] for key in reference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--data", choices=list(DATA), default="squad")
    parser.add_argument("--data_file", help="a SQuAD-format file instead of --data, e.g. a held-out split "
                        "written by bench_accuracy.py (bench/results/accuracy/data/squad-eval.json)")
    parser.add_argument("--max_examples", type=int, default=2000, help="first N questions (default 2000)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no_int8", action="store_true", help="skip the int8 arm")
    parser.add_argument("--no_bf16", action="store_true", help="skip the bfloat16 arm")
    parser.add_argument("--v1", action="store_true",
                        help="decode without 'no answer' whatever the model's qa_settings.json says (v1.1 data)")
    parser.add_argument("--no_trainer", action="store_true", help="skip the trainer arms")
    parser.add_argument("--quick", action="store_true", help="200 questions, 1 rep")
    options = parser.parse_args(argv)
    if options.quick:
        options.max_examples, options.reps = 200, 1
    data_file = Path(options.data_file) if options.data_file else DATA[options.data]
    if not data_file.is_file():
        print(json.dumps({"skipped": f"{data_file} not found"}))
        return 0
    settings, _ = resolve_settings({"version_2_with_negative": False} if options.v1 else {}, options.model)
    post = PostProcess(settings)
    tokenizer = load_tokenizer(options.model)
    reference_backend = load_backend(options.model, Runtime("torch", "cpu", "float32"), seed=0)
    model = reference_backend.model
    checker = RecordChecker(tokenizer, settings, max_bad_fraction=1.0, max_samples={"validation": options.max_examples})
    examples = checker.check("validation", read_records(data_file), SplitReport(str(data_file)))
    features = Windower(tokenizer, settings).eval_features(examples)
    padded_features = Windower(tokenizer, settings, pad_to_max_length=True).eval_features(examples)
    max_length = settings.max_seq_length
    lengths = np.array([len(ids) for ids in features["input_ids"]])
    print(f"{len(examples)} questions, {len(features)} windows, mean length {lengths.mean():.0f}", file=sys.stderr)

    arms = {
        "qa_predict_padded_unsorted": lambda: decode(
            post, examples, features, padded_loop_logits(model, tokenizer, features, options.batch_size, max_length)
        ),
        "qa_predict_sorted_dynamic": lambda: decode(
            post, examples, features, backend_logits(reference_backend, tokenizer, features, options.batch_size)
        ),
    }
    if not options.no_int8:
        int8 = load_backend(options.model, Runtime("torch", "cpu", "int8"), seed=0)
        arms["qa_predict_sorted_dynamic_int8"] = lambda: decode(
            post, examples, features, backend_logits(int8, tokenizer, features, options.batch_size)
        )
    if not options.no_bf16:  # as qa_predict.py --dtype bfloat16: the weights cast, logits decoded in float32
        bf16 = load_backend(options.model, Runtime("torch", "cpu", "bfloat16"), seed=0)
        arms["qa_predict_sorted_dynamic_bf16"] = lambda: decode(
            post, examples, features, backend_logits(bf16, tokenizer, features, options.batch_size)
        )
    if not options.no_trainer:
        arms["trainer_padded_unsorted"] = lambda: trainer_predict(
            model, tokenizer, post, examples, padded_features, options.batch_size, sort=False
        )
        arms["trainer_sorted_dynamic"] = lambda: trainer_predict(
            model, tokenizer, post, examples, features, options.batch_size, sort=True
        )
    times: dict[str, list[float]] = {name: [] for name in arms}
    outputs = {}
    for rep in range(options.reps):
        order = list(arms) if rep % 2 == 0 else list(reversed(arms))
        for name in order:
            seconds, decoded = timed(arms[name])
            times[name].append(seconds)
            outputs[name] = decoded
            print(f"rep {rep} {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    reference = outputs["qa_predict_padded_unsorted"].predictions
    arms_report = {}
    for name in arms:
        median = statistics.median(times[name])
        baseline = "trainer_padded_unsorted" if name.startswith("trainer") else "qa_predict_padded_unsorted"
        scores = post.score(outputs[name], examples)
        arms_report[name] = {
            "seconds": [round(t, 2) for t in times[name]],
            "median_s": round(median, 2),
            "examples_per_s": round(len(examples) / median, 1),
            "speedup_vs_padded_unsorted": round(statistics.median(times[baseline]) / median, 2),
            "same_prediction_as_reference": f"{agreement(reference, outputs[name].predictions)}/{len(reference)}",
            "exact_match": round(scores.get("exact_match", scores.get("exact")), 2),  # v2 models score "exact"
            "f1": round(scores["f1"], 2),
        }
    result = {
        "benchmark": "inference",
        "command": "python -m bench.bench_inference " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": options.model,
        "data": f"{data_file.name}, first {len(examples)} questions, {len(features)} windows "
                f"(mean {lengths.mean():.0f} tokens, max_seq_length {max_length}, doc_stride {settings.doc_stride})",
        "batch_size": options.batch_size,
        "repetitions": options.reps,
        "torch_threads": torch.get_num_threads(),
        "arms": arms_report,
        "machine": machine(torch=torch.__version__),
    }
    publish(result, "inference")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
