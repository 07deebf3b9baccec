#!/usr/bin/env python
"""Answer the same questions with the base model and the fine-tuned one, side by side.

    python qa_predict.py --base_model models/all-MiniLM-L6-v2 --tuned_model models/minilm-qa-demo \
        --data_file data/mock/test.json
    python qa_predict.py --tuned_model models/minilm-qa-demo --question "..." --context_file doc.txt
    python qa_predict.py --tuned_model models/minilm-qa-demo --context_file doc.txt --interactive

Uses the project's own windowing (preprocess.py) and span decoding (postprocess.py), so
answers here are exactly what run_qa.py's evaluation would give.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

from args import ConfigError, DataTrainingArguments, ModelArguments
from postprocess import PostProcess
from preprocess import DataError, Preprocess, read_records
from process import cpu_has_native_bf16, load_model, load_tokenizer, quantize_int8, slow_cpu_bf16_warning
from qa_settings import DECODING_SETTINGS, decoding_settings, describe_settings

logger = logging.getLogger("qa_predict")
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
NO_ANSWER = "(no answer)"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass
class ModelResult:
    name: str
    predictions: dict[str, str]
    metrics: dict
    seconds: float
    features: int


def predict_logits(model, tokenizer, features: Dataset, batch_size: int = 32, progress: str = "") -> list[tuple]:
    """Start/end logits for every window, trimmed to its own length.

    Windows are batched longest first so each batch pads only to its own longest window.
    """
    columns = {name: list(features[name]) for name in MODEL_INPUTS if name in features.column_names}
    lengths = np.array([len(ids) for ids in columns["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    collator = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    results: list[tuple | None] = [None] * len(lengths)
    model.eval()
    with torch.inference_mode():
        for begin in tqdm(range(0, len(order), batch_size), desc=progress or "Predicting", unit="batch"):
            indices = order[begin : begin + batch_size]
            batch = collator([{name: values[i] for name, values in columns.items()} for i in indices])
            output = model(**{k: v.to(device) for k, v in batch.items()})
            start = output.start_logits.float().cpu().numpy()
            end = output.end_logits.float().cpu().numpy()
            for row, index in enumerate(indices):
                results[index] = (start[row, : lengths[index]], end[row, : lengths[index]])
    return results


def device_arg(value: str) -> str:
    """argparse type for --device: auto, cpu, cuda or cuda:N."""
    if not DEVICE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(requested: str, dtype: str, quantize: str | None, cuda_devices: int) -> str:
    """The device to predict on, or a ConfigError for a combination that cannot run well.

    auto is the first GPU when there is one, else the CPU; with --quantize it is the CPU,
    since the int8 kernels run only there. float16 is refused on the CPU, where its
    matmuls are slow or unsupported (bfloat16 works there).
    """
    if requested == "auto":
        device = "cuda" if cuda_devices and not quantize else "cpu"
    elif requested.startswith("cuda"):
        if not cuda_devices:
            raise ConfigError(f"--device {requested}: CUDA is not available on this machine; use --device cpu or auto.")
        index = int(requested.partition(":")[2] or 0)
        if index >= cuda_devices:
            raise ConfigError(
                f"--device {requested}: only {cuda_devices} CUDA device(s) here (cuda:0 to cuda:{cuda_devices - 1})."
            )
        device = requested
    else:
        device = "cpu"
    if dtype == "float16" and device == "cpu":
        hint = " (--device auto found no CUDA device)" if requested == "auto" else ""
        raise ConfigError(f"--dtype float16 is not supported on the CPU{hint}; use bfloat16 or float32 there.")
    if quantize and (device != "cpu" or dtype != "float32"):
        raise ConfigError(
            f"--quantize {quantize} runs on the CPU in float32 only, not on {device} in {dtype}: "
            "drop --device/--dtype or --quantize."
        )
    return device


def chosen_device(args) -> str:
    return resolve_device(args.device, args.dtype, args.quantize, cuda_device_count())


def settings_flags(args) -> dict:
    """The decoding flags as given on the command line (None where not given)."""
    return {name: getattr(args, name) for name in DECODING_SETTINGS}


def settings_model(args) -> str | None:
    """Whose settings both models use: the tuned model's, else the base model's."""
    return args.tuned_model or args.base_model


class Answerer:
    """One model with its own tokenizer and windowing, loaded once, answering many questions."""

    def __init__(self, name: str, path: str, args, settings: dict | None = None, device: str | None = None):
        """`settings`: resolved decoding settings (see decoding_settings), by default the model's
        own; `device`: as resolve_device gives it, by default chosen from args."""
        self.name, self.path, self.args = name, path, args
        if settings is None:
            settings, _ = decoding_settings(settings_flags(args), path)
        self.settings = settings
        self.device = device or chosen_device(args)
        torch.manual_seed(args.seed)  # a base model's QA head is newly initialised: keep it reproducible
        model_args = ModelArguments(model_name_or_path=path)
        self.tokenizer = load_tokenizer(model_args)
        data_args = DataTrainingArguments(
            validation_file=args.data_file or "command line",
            max_seq_length=settings["max_seq_length"],
            doc_stride=settings["doc_stride"],
            version_2_with_negative=settings["version_2_with_negative"],
            max_eval_samples=args.max_examples,
            max_bad_fraction=1.0,
        )
        self.preprocess = Preprocess(data_args, self.tokenizer)
        self.model = load_model(model_args, None, is_trainable=False)
        if args.quantize == "int8":
            self.model = quantize_int8(self.model)
        else:
            self.model = self.model.to(device=self.device, dtype=DTYPES[args.dtype])
            if args.dtype == "bfloat16" and self.device == "cpu":
                warning = slow_cpu_bf16_warning("--dtype bfloat16 predicts", cpu_has_native_bf16())
                if warning:
                    logger.warning(warning)
        logger.info("%s model on %s in %s%s", name, self.device, args.dtype, " (int8 quantized)" if args.quantize else "")
        self.post = PostProcess(
            n_best_size=settings["n_best_size"],
            max_answer_length=settings["max_answer_length"],
            version_2_with_negative=settings["version_2_with_negative"],
            null_score_diff_threshold=settings["null_score_diff_threshold"],
        )

    def examples(self, source: str, records: list[dict]) -> Dataset:
        return self.preprocess.check_records("validation", source, records)

    def answer(self, examples: Dataset, score: bool) -> ModelResult:
        features = self.preprocess.eval_features(examples)
        started = time.perf_counter()
        logits = predict_logits(self.model, self.tokenizer, features, self.args.batch_size, progress=f"{self.name} model")
        decoded = self.post.decode(examples, features, ([s for s, _ in logits], [e for _, e in logits]))
        seconds = time.perf_counter() - started
        metrics = self.post.score(decoded, examples) if score else {}
        return ModelResult(self.name, decoded.predictions, metrics, seconds, len(features))


def input_records(args) -> tuple[str, list[dict], bool]:
    """(source name, raw records, whether they carry gold answers to score)."""
    if args.data_file:
        return args.data_file, read_records(args.data_file), True
    context = read_context(args)
    if not context or not args.question:
        raise ConfigError("Give --data_file, or --question with --context / --context_file.")
    records = [{"id": f"q{i}", "question": q, "context": context, "answers": []} for i, q in enumerate(args.question)]
    return "command line", records, False


def read_context(args) -> str | None:
    if args.context_file:
        path = Path(args.context_file)
        if not path.is_file():
            raise ConfigError(f"Context file not found: {path}")
        return path.read_text(encoding="utf-8")
    return args.context


def chosen_models(args) -> list[tuple[str, str]]:
    models = [(n, p) for n, p in (("base", args.base_model), ("tuned", args.tuned_model)) if p]
    if not models:
        raise ConfigError("Give --base_model and/or --tuned_model.")
    return models


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split()) or NO_ANSWER
    return text if len(text) <= width else text[: width - 1] + "…"


def comparison_table(examples: Dataset, results: list[ModelResult], rows: int, width: int = 28) -> str:
    """A plain-text table: question, gold answer, then each model's answer."""
    header = ["question", "gold"] + [r.name for r in results]
    lines = [" | ".join(h.ljust(width) for h in header), "-+-".join("-" * width for _ in header)]
    for example in examples.select(range(min(rows, len(examples)))):
        gold = example["answers"]["text"][0] if example["answers"]["text"] else ""
        cells = [example["question"], gold] + [r.predictions[example["id"]] for r in results]
        lines.append(" | ".join(_cell(c, width).ljust(width) for c in cells))
    return "\n".join(lines)


def metrics_table(results: list[ModelResult]) -> str:
    lines = []
    for r in results:
        shown = ", ".join(f"{k}={v:.2f}" for k, v in r.metrics.items() if not k.endswith(("total", "thresh")))
        lines.append(f"{r.name:>6}: {shown or 'no gold answers to score'} ({r.features} windows, {r.seconds:.1f}s)")
    return "\n".join(lines)


def default_settings_text() -> str:
    values, _ = decoding_settings({}, None)
    shown = [("on" if value else "off") if isinstance(value, bool) else str(value) for value in values.values()]
    return ", ".join(shown)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base_model", help="Model the fine-tune started from (directory or Hub id).")
    p.add_argument("--tuned_model", help="Fine-tuned model directory (full model or LoRA adapter).")
    p.add_argument("--data_file", help="SQuAD-format data (any format run_qa.py accepts).")
    p.add_argument("--question", action="append", help="Ad-hoc question (repeatable).")
    p.add_argument("--context", help="Context for --question.")
    p.add_argument("--context_file", help="Text file holding the context for --question.")
    p.add_argument("--interactive", action="store_true", help="Ask questions about --context/--context_file at a prompt.")
    p.add_argument("--output_file", help="Write a JSON report (predictions and metrics of each model) here.")
    decoding = p.add_argument_group(
        "decoding settings",
        "Default: the tuned (else base) model directory's qa_settings.json, then its run_args.json, "
        f"then run_qa.py's defaults ({default_settings_text()}). Both models use the same values.",
    )
    decoding.add_argument(
        "--version_2_with_negative",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Allow 'no answer' (SQuAD v2 scoring); --no-version_2_with_negative forces it off.",
    )
    decoding.add_argument("--null_score_diff_threshold", type=float, help="No-answer threshold (v2).")
    decoding.add_argument("--max_seq_length", type=int, help="Tokens per window.")
    decoding.add_argument("--doc_stride", type=int, help="Overlap between windows.")
    decoding.add_argument("--n_best_size", type=int, help="Candidates per window.")
    decoding.add_argument("--max_answer_length", type=int, help="Longest answer in tokens.")
    p.add_argument("--batch_size", type=int, default=32, help="Windows per inference batch.")
    p.add_argument(
        "--device",
        type=device_arg,
        default="auto",
        help="auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N.",
    )
    p.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default="float32",
        help="Weights' dtype for prediction (float16 needs a GPU); logits are decoded in float32.",
    )
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="CPU int8 dynamic quantization of the Linear layers: faster CPU prediction, see README.",
    )
    p.add_argument("--max_examples", type=int, help="Use only the first N examples of --data_file.")
    p.add_argument("--documents", help="Folder of documents: answer --question from its best BM25 passages (docqa.py).")
    p.add_argument("--top_k", type=int, default=3, help="Answers per question with --documents.")
    p.add_argument("--backend", default="torch", choices=["torch", "torch-int8", "onnx", "onnx-int8"],
                   help="What runs the model with --documents (backends.py).")
    p.add_argument("--show", type=int, default=10, help="Rows of the side-by-side table to print.")
    p.add_argument("--seed", type=int, default=42, help="Seed for a base model's untrained QA head.")
    return p


def resolved_settings(args) -> tuple[dict, dict]:
    """The settings both models use, logged with where each came from."""
    values, sources = decoding_settings(settings_flags(args), settings_model(args))
    logger.info("Decoding settings (from %s): %s", settings_model(args), describe_settings(values, sources))
    return values, sources


def compare(args) -> dict:
    models = chosen_models(args)
    device = chosen_device(args)
    source, records, labeled = input_records(args)
    settings, sources = resolved_settings(args)
    results, examples = [], None
    for name, path in models:
        answerer = Answerer(name, path, args, settings, device)
        examples = answerer.examples(source, records)
        results.append(answerer.answer(examples, score=labeled))
    print(comparison_table(examples, results, args.show))
    print(metrics_table(results))
    report = {
        "data_file": args.data_file,
        "examples": len(examples),
        "version_2_with_negative": settings["version_2_with_negative"],
        "settings": {"from": settings_model(args), "values": settings, "sources": sources},
        "runtime": {"device": device, "dtype": args.dtype, "quantize": args.quantize},
        "models": {
            r.name: {"path": path, "metrics": r.metrics, "seconds": r.seconds, "windows": r.features}
            for r, (_, path) in zip(results, models)
        },
        "predictions": {
            example_id: {r.name: r.predictions[example_id] for r in results} for example_id in examples["id"]
        },
    }
    if args.output_file:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        logger.info("Report written to %s", args.output_file)
    return report


def interactive(args, stdin=sys.stdin) -> None:
    context = read_context(args)
    if not context:
        raise ConfigError("--interactive needs --context or --context_file.")
    models = chosen_models(args)
    device = chosen_device(args)
    settings, _ = resolved_settings(args)
    answerers = [Answerer(name, path, args, settings, device) for name, path in models]
    print("Ask a question about the context (empty line to quit).")
    for line in stdin:
        question = line.strip()
        if not question:
            break
        record = [{"id": "q", "question": question, "context": context, "answers": []}]
        for answerer in answerers:
            result = answerer.answer(answerer.examples("prompt", record), score=False)
            print(f"{answerer.name:>6}: {result.predictions['q'] or NO_ANSWER}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        if args.documents:
            from docqa import ask_from_command_line  # retrieval + reading over a folder: see docqa.py

            return ask_from_command_line(args)
        if args.interactive:
            interactive(args)
        else:
            compare(args)
    except (ConfigError, DataError) as err:
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
