#!/usr/bin/env python
"""Answer the same questions with the base model and the fine-tuned one, side by side.

    python qa_predict.py --base_model models/all-MiniLM-L6-v2 --tuned_model models/minilm-qa-demo --data_file data/mock/test.json
    python qa_predict.py --tuned_model models/minilm-qa-demo --question "..." --context_file doc.txt
    python qa_predict.py --tuned_model models/minilm-qa-demo --context_file doc.txt --interactive
    python qa_predict.py --tuned_model models/minilm-qa-demo --documents my/docs --question "..."
    python qa_predict.py --tuned_model models/minilm-qa-demo --documents my/docs --data_file labelled.json   # evaluate

Windows and decoding are the library's (the same as evaluation inside training), so the
answers here are the ones run_qa.py's evaluation scored (to within bfloat16's rounding where
--dtype auto and run_qa.py's --precision auto pick bfloat16, on CPUs with bfloat16 units;
--dtype float32 gives float32's exact answers); --backend/--device/--dtype choose what runs
the model. Each answer carries a confidence: calibrated when the model's own
qa_settings.json has a calibration (fitted after training), else the softmax over the
question's candidates (slmqa.decoding.calibration).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from datasets import Dataset

from args import add_column_options, columns_of
from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.formats import read_records
from slmqa.decoding.calibration import (
    expected_calibration_error,
    first_probability,
    question_candidates,
    rightness,
)
from slmqa.decoding.predictions import references, squad_scores
from slmqa.errors import ConfigError, DataError
from slmqa.inference.predictor import Predictor
from slmqa.inference.runtime import Runtime, add_runtime_arguments, runtime_from_args
from slmqa.logs import get_logger, setup_logging
from slmqa.serving.docqa import DEFAULT_PASSAGES, DEFAULT_RETRIEVER
from slmqa.serving.retrieval import RETRIEVERS
from slmqa.settings import DEFAULTS, SETTING_NAMES, QASettings, model_calibration, resolve_settings

logger = get_logger("qa_predict")
NO_ANSWER = "(no answer)"


@dataclass
class ModelResult:
    name: str
    predictions: dict[str, str]
    metrics: dict
    seconds: float
    features: int
    confidence: dict[str, float]  # of each prediction; questions without any span have none
    confidence_kind: str  # "calibrated, <method (parameters)>" or "softmax"
    confidence_ece: float | None = None  # expected calibration error of `confidence`, when scored


class Answerer:
    """One model of the comparison: its predictor, and the record checks its tokenizer implies."""

    def __init__(self, name: str, path: str, args, settings: QASettings, runtime: Runtime):
        self.name, self.path, self.args, self.settings = name, path, args, settings
        # Its own calibration, never the other model's (both share the window and decoding settings).
        self.calibration = model_calibration(path)
        self.predictor = Predictor(path, settings, runtime, seed=args.seed)
        self.checker = RecordChecker(
            self.predictor.tokenizer,
            settings,
            columns_of(args),
            max_bad_fraction=1.0,  # comparing, not training: every usable record is answered, the rest listed
            max_samples={"validation": args.max_examples},
        )

    def examples(self, source: str, records: list[dict]) -> Dataset:
        return self.checker.check("validation", records, SplitReport(source=source))

    def answer(self, examples: Dataset, score: bool) -> ModelResult:
        prediction = self.predictor.predict(examples, self.args.batch_size, progress=f"{self.name} model")
        metrics = squad_scores(prediction.decoded, examples, self.settings) if score else {}
        candidates = question_candidates(prediction.decoded, self.settings)
        confidence = first_probability(candidates.scores, self.calibration) if candidates.ids else []
        ece = None
        if score and candidates.ids:
            ece = expected_calibration_error(confidence, rightness(candidates, references(examples))[1])
        kind = f"calibrated, {self.calibration.describe()}" if self.calibration else "softmax"
        return ModelResult(
            self.name, prediction.decoded.predictions, metrics, prediction.seconds, prediction.windows,
            dict(zip(candidates.ids, map(float, confidence))), kind, ece,
        )  # fmt: skip


def input_records(args) -> tuple[str, list[dict], bool]:
    """(source name, raw records, whether they carry gold answers to score)."""
    if args.data_file:
        return args.data_file, read_records(args.data_file), True
    context = read_context(args)
    if not context or not args.question:
        raise ConfigError("Give --data_file, or --question with --context / --context_file.")
    columns = columns_of(args)
    records = [
        {columns.id: f"q{i}", columns.question: q, columns.context: context, columns.answers: []}
        for i, q in enumerate(args.question)
    ]
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


def _cell(text: str, width: int, suffix: str = "") -> str:
    """The text cut to fit `width` together with `suffix` (which is always shown)."""
    text, room = " ".join(text.split()) or NO_ANSWER, width - len(suffix)
    return (text if len(text) <= room else text[: room - 1] + "…") + suffix


def _confidence(result: ModelResult, example_id: str) -> str:
    value = result.confidence.get(example_id)
    return "" if value is None else f" ({100 * value:.0f}%)"


def comparison_table(examples: Dataset, results: list[ModelResult], rows: int, width: int = 28) -> str:
    """A plain-text table: question, gold answer, then each model's answer with its confidence."""
    header = ["question", "gold"] + [r.name for r in results]
    lines = [" | ".join(h.ljust(width) for h in header), "-+-".join("-" * width for _ in header)]
    for example in examples.select(range(min(rows, len(examples)))):
        gold = example["answers"]["text"][0] if example["answers"]["text"] else ""
        cells = [_cell(example["question"], width), _cell(gold, width)]
        cells += [_cell(r.predictions[example["id"]], width, _confidence(r, example["id"])) for r in results]
        lines.append(" | ".join(c.ljust(width) for c in cells))
    return "\n".join(lines)


def metrics_table(results: list[ModelResult]) -> str:
    """Scores per model, and what its confidence column is (and, when scored, its calibration error)."""
    lines = []
    for r in results:
        shown = ", ".join(f"{k}={v:.2f}" for k, v in r.metrics.items() if not k.endswith(("total", "thresh")))
        ece = f", ECE {r.confidence_ece:.3f}" if r.confidence_ece is not None else ""
        lines.append(
            f"{r.name:>6}: {shown or 'no gold answers to score'} ({r.features} windows, {r.seconds:.1f}s; "
            f"confidence: {r.confidence_kind}{ece})"
        )
    return "\n".join(lines)


def default_settings_text() -> str:
    shown = [("on" if value else "off") if isinstance(value, bool) else str(value) for value in asdict(DEFAULTS).values()]
    return ", ".join(shown)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="python qa_predict.py --tuned_model DIR [--base_model DIR] (--data_file F | --question Q ... | --documents DIR) [options]",
    )
    p.add_argument("--base_model", help="Model the fine-tune started from (directory or Hub id).")
    p.add_argument("--tuned_model", help="Fine-tuned model directory (full model or LoRA adapter).")
    p.add_argument("--data_file", help="SQuAD-format data (any format run_qa.py accepts).")
    p.add_argument("--question", action="append", help="Ad-hoc question (repeatable).")
    p.add_argument("--context", help="Context for --question.")
    p.add_argument("--context_file", help="Text file holding the context for --question.")
    p.add_argument("--interactive", action="store_true", help="Ask questions about --context/--context_file (or --documents) at a prompt.")
    p.add_argument("--output_file", help="Write a JSON report (predictions and metrics of each model) here.")
    p.add_argument("--max_examples", type=int, help="Use only the first N examples of --data_file.")
    p.add_argument("--documents", help="Folder of documents: answer --question from its best passages (docs/serving.md).")
    p.add_argument("--top_k", type=int, default=3, help="Answers per question with --documents.")
    p.add_argument("--passages", type=int, default=DEFAULT_PASSAGES, help="Passages read per question with --documents.")
    p.add_argument("--passage_ratio", type=float, help="With --documents: read fewer passages when retrieval is confident "
                   "(as serve.py --passage_ratio; default 0.9 with hybrid retrieval, else 0 = read all --passages).")
    p.add_argument("--min_passages", type=int, default=3, help="With --documents: passages always read (see --passage_ratio).")
    p.add_argument("--retriever", choices=RETRIEVERS, default=DEFAULT_RETRIEVER, help="With --documents: bm25, dense or hybrid.")
    p.add_argument("--embedder", help="With --documents: sentence encoder for dense/hybrid (default all-MiniLM-L6-v2).")
    p.add_argument("--index_dir", help="With --documents: where the folder's index is kept (default as serve.py's).")
    p.add_argument("--batch_size", type=int, default=32, help="Windows per inference batch.")
    p.add_argument("--show", type=int, default=10, help="Rows of the side-by-side table to print.")
    p.add_argument("--seed", type=int, default=42, help="Seed for a base model's untrained QA head.")
    p.add_argument("--quantize", help=argparse.SUPPRESS)  # retired: --dtype int8
    decoding = p.add_argument_group(
        "decoding settings",
        "Default: the tuned (else base) model directory's qa_settings.json, then its run_args.json, "
        f"then the defaults ({default_settings_text()}). Both models use the same values.",
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
    add_runtime_arguments(p)
    add_column_options(p)
    return p


def settings_model(args) -> str | None:
    """Whose settings both models use: the tuned model's, else the base model's."""
    return args.tuned_model or args.base_model


def resolved_settings(args) -> tuple[QASettings, dict]:
    """The settings both models use, logged with where each came from."""
    flags = {name: getattr(args, name) for name in SETTING_NAMES}
    settings, sources = resolve_settings(flags, settings_model(args))
    logger.info("Decoding settings (from %s): %s", settings_model(args), settings.describe(sources))
    return settings, sources


def compare(args) -> dict:
    models = chosen_models(args)
    runtime = runtime_from_args(args).resolve()
    source, records, labeled = input_records(args)
    settings, sources = resolved_settings(args)
    results, examples = [], None
    for name, path in models:
        answerer = Answerer(name, path, args, settings, runtime)
        examples = answerer.examples(source, records)
        results.append(answerer.answer(examples, score=labeled))
    print(comparison_table(examples, results, args.show))
    print(metrics_table(results))
    report = {
        "data_file": args.data_file,
        "examples": len(examples),
        "version_2_with_negative": settings.version_2_with_negative,
        "settings": {"from": settings_model(args), "values": asdict(settings), "sources": sources},
        "runtime": asdict(runtime),
        "models": {
            r.name: {
                "path": path, "metrics": r.metrics, "seconds": r.seconds, "windows": r.features,
                "confidence": r.confidence_kind, "confidence_ece": r.confidence_ece,
            }
            for r, (_, path) in zip(results, models)
        },  # fmt: skip
        "predictions": {
            example_id: {r.name: r.predictions[example_id] for r in results} for example_id in examples["id"]
        },
        # The probability of each prediction (calibrated when the model has a calibration; see models.*.confidence).
        "confidence": {
            example_id: {r.name: r.confidence.get(example_id) for r in results} for example_id in examples["id"]
        },
    }
    write_report(args.output_file, report)
    return report


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        logger.info("Report written to %s", path)


def interactive(args, stdin=sys.stdin) -> None:
    context = read_context(args)
    if not context:
        raise ConfigError("--interactive needs --context or --context_file (or --documents).")
    runtime = runtime_from_args(args).resolve()
    settings, _ = resolved_settings(args)
    answerers = [Answerer(name, path, args, settings, runtime) for name, path in chosen_models(args)]
    columns = columns_of(args)
    print("Ask a question about the context (empty line to quit).")
    for line in stdin:
        question = line.strip()
        if not question:
            break
        record = [{columns.id: "q", columns.question: question, columns.context: context, columns.answers: []}]
        for answerer in answerers:
            result = answerer.answer(answerer.examples("prompt", record), score=False)
            print(f"{answerer.name:>6}: {result.predictions['q'] or NO_ANSWER}{_confidence(result, 'q')}")


def document_qa(args, model: str):
    """The DocumentQA serve.py would build for this folder and model (same index, retriever, settings)."""
    from slmqa.serving.docqa import DocumentQA, Options
    from slmqa.serving.documents import DocumentError
    from slmqa.serving.index import default_index_dir

    flagged = any(getattr(args, name) is not None for name in SETTING_NAMES)
    settings = resolved_settings(args)[0] if flagged else None  # None: the model's own, as serve.py reads them
    try:
        options = Options(passages=args.passages, retriever=args.retriever, embedder=args.embedder, batch_size=args.batch_size,
                          passage_ratio=args.passage_ratio, min_passages=args.min_passages)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:
        return DocumentQA(model, args.documents, runtime=runtime_from_args(args), options=options, settings=settings,
                          index_dir=args.index_dir or default_index_dir(args.documents))
    except DocumentError as err:
        raise ConfigError(str(err)) from None


def evaluate_documents_command(args, model: str) -> int:
    """--documents with --data_file: the whole path (retrieval, reading, abstentions, latency) on labelled questions."""
    from tqdm.auto import tqdm

    from slmqa.serving.evaluation import evaluate_documents, labelled_questions

    qa = document_qa(args, model)
    checker = RecordChecker(qa.reader.tokenizer, qa.settings, columns_of(args), max_bad_fraction=1.0,
                            max_samples={"validation": args.max_examples})
    examples = checker.check("validation", read_records(args.data_file), SplitReport(source=args.data_file))
    items = labelled_questions(list(examples))
    report = evaluate_documents(qa, items, progress=lambda xs: tqdm(xs, desc="Questions", unit="question"))
    recall = ", ".join(f"{k} {v:.3f}" for k, v in report["retrieval"].items() if v is not None)
    served, gold = report["reader_over_retrieved"], report["reader_given_gold_context"]
    print(f"{report['questions']} questions, {qa.options.retriever} retrieval, {report['mean_passages_read']} passages read "
          f"on average (at most {qa.options.passages}, passage ratio {qa.options.reading_ratio}) "
          f"({report['gold_document_not_in_folder']} with no gold document in the folder)")
    print(f"  retrieval: {recall or 'no gold document found'}")
    print(f"  reader over retrieved passages: EM {served.get('exact', 0):.2f}, F1 {served.get('f1', 0):.2f}")
    if gold:
        print(f"  reader given the gold context:  EM {gold['exact']:.2f}, F1 {gold['f1']:.2f}")
    print(f"  no answer: {100 * report['no_answer_rate']:.1f}%; latency p50 {report['latency']['p50_ms']} ms, "
          f"p95 {report['latency']['p95_ms']} ms")
    write_report(args.output_file, {"data_file": args.data_file, "model": model, "documents": qa.describe(), **report})
    return 0


def ask_documents(args, stdin=None) -> int:
    """--documents: answer --question (or questions typed at a prompt) from the folder's best passages;
    with --data_file, evaluate the whole path on labelled questions instead."""
    from slmqa.serving.docqa import format_reading

    model = args.tuned_model or args.base_model
    questions = list(args.question or [])
    if not model:
        raise ConfigError("--documents needs --tuned_model (or --base_model).")
    if args.data_file:
        return evaluate_documents_command(args, model)
    if not questions and not args.interactive:
        raise ConfigError("--documents needs --question (repeatable), --interactive, or --data_file to evaluate.")
    if args.top_k < 1:
        raise ConfigError(f"--top_k must be >= 1, got {args.top_k}.")
    qa = document_qa(args, model)
    readings = qa.ask(questions, top_k=args.top_k) if questions else []
    for reading in readings:
        print(format_reading(reading))
    if args.interactive:
        print("Ask a question about the documents (empty line to quit).")
        for line in stdin or sys.stdin:
            if not line.strip():
                break
            reading = qa.ask([line.strip()], top_k=args.top_k)[0]
            readings.append(reading)
            print(format_reading(reading))
    write_report(args.output_file, {"documents": qa.describe(), "readings": [r.to_json() for r in readings]})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.INFO)
    try:
        if args.quantize is not None:
            raise ConfigError(f"--quantize {args.quantize} is now --dtype {args.quantize} (with --backend torch or onnx).")
        if args.documents:
            return ask_documents(args)
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
