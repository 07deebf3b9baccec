#!/usr/bin/env python
"""Stage 1: read and check the data of each split, then tokenize it into windows.

    python preprocess.py --check FILE [FILE ...] [--max_seq_length N --question_column q ...]   # no training

`Preprocess` is the stage run_qa.py uses: it reads each split (a file through
slmqa.data.formats, or a Hub dataset), checks and repairs its records (slmqa.data.checks:
the data report), and cuts them into labelled training or evaluation windows
(slmqa.data.windows). `--check` shows, per file, what training would see.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from datasets import Dataset

from args import DEFAULT_BASE_MODEL, DEFAULT_SEED, DataTrainingArguments, add_column_options
from slmqa.data.checks import RecordChecker, SplitReport, dropped_by_kind
from slmqa.data.formats import read_records
from slmqa.data.splits import SPLIT_FILE_ARG
from slmqa.data.windows import (
    ANSWER_LENGTH_PERCENTILE,
    WINDOW_COLUMN,
    Windower,
    answer_length_summary,
    answer_token_lengths,
    answerless_window_advice,
    length_percentile,
)
from slmqa.errors import ConfigError, DataError
from slmqa.logs import get_logger, setup_logging
from slmqa.settings import DEFAULTS

logger = get_logger("preprocess")

# --check warns when max_answer_length would cut more than this share of the training answers.
CUT_WARNING_FRACTION = 0.01


class Preprocess:
    """Stage 1: clean and check the data, then tokenize it for training or evaluation."""

    def __init__(self, data_args, tokenizer, *, seed: int = DEFAULT_SEED, cache_dir: str | None = None, token: str | None = None):
        """`seed` (the run's data_seed or seed) decides which answerless training windows are kept;
        `cache_dir` and `token` are for a Hub dataset (--dataset_name)."""
        if not getattr(tokenizer, "is_fast", False):
            raise DataError(
                f"Tokenizer {type(tokenizer).__name__} is not a fast tokenizer: span labelling needs its offset "
                "mapping. Use a model with a tokenizer.json (or pass --tokenizer_name of a fast tokenizer)."
            )
        self.data_args = data_args
        self.tokenizer = tokenizer
        self.hub_options = {"cache_dir": cache_dir, "token": token}
        self.settings = data_args.settings()
        self.checker = RecordChecker(
            tokenizer,
            self.settings,
            data_args.columns(),
            max_bad_fraction=data_args.max_bad_fraction,
            max_samples={
                "train": data_args.max_train_samples,
                "validation": data_args.max_eval_samples,
                "test": data_args.max_predict_samples,
            },
        )
        self.windows = Windower(
            tokenizer,
            self.settings,
            seed=seed,
            keep_answerless_windows=data_args.keep_answerless_windows,
            pad_to_max_length=data_args.pad_to_max_length,
            num_proc=data_args.preprocessing_num_workers,
            use_cache=not data_args.overwrite_cache,
        )
        self.reports: dict[str, SplitReport] = {}

    def load(self, splits: Iterable[str]) -> dict[str, Dataset]:
        """Read, check and clean the requested splits; raise DataError before any training.

        max_answer_length "auto" is resolved here, from the training answers: afterwards
        `self.settings` (and data_args) hold the number.
        """
        raw = self._read_splits(list(splits))
        examples = {split: self.check_records(split, source, records) for split, (source, records) in raw.items()}
        if self.data_args.max_answer_length == "auto":
            if "train" not in examples:
                raise ConfigError(
                    "max_answer_length auto is taken from the training data, but this run does not train: pass a number."
                )
            self.data_args.max_answer_length = self.auto_max_answer_length(examples["train"])
            self.settings = replace(self.settings, max_answer_length=self.data_args.max_answer_length)
        return examples

    def _read_splits(self, splits: list[str]) -> dict[str, tuple[str, list[dict]]]:
        args = self.data_args
        raw = {}
        hub = None
        for split in splits:
            path = getattr(args, SPLIT_FILE_ARG[split])
            if path:
                raw[split] = (str(path), read_records(path))
                continue
            if not args.dataset_name:
                raise DataError(f"No {split} data: pass --{SPLIT_FILE_ARG[split]} (or --dataset_name).")
            if hub is None:
                from datasets import load_dataset

                hub = load_dataset(args.dataset_name, args.dataset_config_name, **self.hub_options)
            if split not in hub:
                raise DataError(f"Dataset {args.dataset_name} has no '{split}' split (it has {sorted(hub)}).")
            raw[split] = (f"{args.dataset_name}:{split}", hub[split].to_list())
        return raw

    def check_records(self, split: str, source: str, records: list[dict]) -> Dataset:
        """Check and clean raw records of one split; see slmqa.data.checks."""
        self.reports[split] = SplitReport(source=source)
        return self.checker.check(split, records, self.reports[split])

    def report(self) -> dict:
        return {split: asdict(r) | {"counts": r.counts()} for split, r in self.reports.items()}

    def answer_lengths(self, examples: Dataset) -> np.ndarray:
        """Token lengths of the examples' (first) answers, as training labels them."""
        return answer_token_lengths(list(examples["context"]), list(examples["answers"]), self.tokenizer)

    def auto_max_answer_length(self, train_examples: Dataset) -> int:
        """max_answer_length auto: the ANSWER_LENGTH_PERCENTILE-th percentile of the training answers, rounded up."""
        lengths = self.answer_lengths(train_examples)
        if len(lengths) == 0:
            source = self.reports["train"].source if "train" in self.reports else "the training data"
            raise DataError(
                f"{source}: max_answer_length auto needs answerable training questions; there are none. Pass a number."
            )
        resolved = length_percentile(lengths)
        logger.info(
            "max_answer_length auto -> %d (%dth percentile of %d training answers)",
            resolved, ANSWER_LENGTH_PERCENTILE, len(lengths),
        )  # fmt: skip
        return resolved

    def train_features(self, examples: Dataset) -> Dataset:
        """Windows labelled with answer start/end tokens (CLS when the answer is not inside).

        Answerless windows are thinned out by --keep_answerless_windows; the counts before and
        after go into the train report. They are read from the mapped columns, not counted
        inside the batch function, which a cached or multi-process map() never runs here.
        """
        report = self.reports.get("train")
        features = self.windows.kept_windows(self.windows.labelled_windows(examples), report)
        if report is not None and (advice := answerless_window_advice(report.windows_kept, report.answer_windows)):
            logger.warning("%s: %s", report.source, advice)
        return features

    def eval_features(self, examples: Dataset, split: str | None = None) -> Dataset:
        """Windows that remember their example id, context offsets and CLS position for decoding.

        Every window is kept; with `split` its count goes into that split's report.
        """
        features = self.windows.eval_features(examples)
        report = self.reports.get(split) if split else None
        if report is not None:
            report.windows = report.windows_kept = len(features)
        return features


# ---------------------------------------------------------------- data check without training


def check_files(paths: list[str], data_args, tokenizer, seed: int = DEFAULT_SEED) -> dict:
    """What training would see in each file: counts, repairs, defects, windows per example.

    The training windows are built as well, so the counts show what --keep_answerless_windows
    (with this seed) leaves of them.
    """
    summary = {}
    for path in paths:
        args = replace(data_args, train_file=path, validation_file=None, test_file=None)
        preprocess = Preprocess(args, tokenizer, seed=seed)
        try:
            examples = preprocess.check_records("train", path, read_records(path))
        except DataError as err:
            report = preprocess.reports.get("train")
            summary[path] = {"error": str(err), **(_report_lists(report) if report else {})}
            continue
        report = preprocess.reports["train"]
        labelled = preprocess.windows.labelled_windows(examples)
        preprocess.windows.kept_windows(labelled, report)
        window_index = np.asarray(labelled[WINDOW_COLUMN])
        lengths = preprocess.answer_lengths(examples)
        limit = data_args.max_answer_length
        answer_tokens = answer_length_summary(lengths, length_percentile(lengths) if limit == "auto" and len(lengths) else limit)
        warnings = [advice] if (advice := answerless_window_advice(report.windows_kept, report.answer_windows)) else []
        if answer_tokens.get("cut_fraction", 0.0) > CUT_WARNING_FRACTION:
            warnings.append(
                f"max_answer_length={answer_tokens['max_answer_length']} would cut {answer_tokens['cut']} of "
                f"{answer_tokens['answers']} training answers ({answer_tokens['cut_fraction']:.1%}, more than "
                f"{CUT_WARNING_FRACTION:.0%}); the {ANSWER_LENGTH_PERCENTILE}th percentile is "
                f"{length_percentile(lengths)} tokens (--max_answer_length auto)."
            )
        summary[path] = {
            "located_spans": report.located_spans,
            "ambiguous_spans": report.ambiguous_spans,
            "generated_ids": report.generated_ids,
            **dropped_by_kind(report.dropped),
            "windows": len(window_index),
            "contexts_longer_than_window": int((window_index == 1).sum()),
            "max_windows_per_example": int(window_index.max()) + 1,
            "answer_tokens": answer_tokens,
            "warnings": warnings,
            **_report_lists(report),
        }
    return summary


def _report_lists(report: SplitReport) -> dict:
    """The counts (they add up: records = kept + dropped_records + skipped) and every dropped and repaired record."""
    return {
        "counts": report.counts(),
        "dropped": [str(d) for d in report.dropped],
        "repaired": [str(r) for r in report.repaired],
    }


def build_check_parser() -> argparse.ArgumentParser:
    defaults = {f: getattr(DataTrainingArguments, f) for f in ("max_bad_fraction", "keep_answerless_windows")}
    parser = argparse.ArgumentParser(
        description="Check SQuAD-format data files without training: what training would see in each, and why "
        "records were dropped or repaired.",
        usage="python preprocess.py --check FILE [FILE ...] [options]",
    )
    parser.add_argument("--check", nargs="+", required=True, metavar="FILE", help="Data files to check.")
    parser.add_argument("--tokenizer", default=DEFAULT_BASE_MODEL, help="Tokenizer (model directory or Hub id).")
    parser.add_argument("--max_seq_length", type=int, default=DEFAULTS.max_seq_length, help="Tokens per window.")
    parser.add_argument("--doc_stride", type=int, default=DEFAULTS.doc_stride, help="Overlap between windows.")
    parser.add_argument("--max_bad_fraction", type=float, default=defaults["max_bad_fraction"],
                        help="Call a file unusable when more than this share of its records is.")
    parser.add_argument("--version_2_with_negative", action="store_true", help="Unanswerable questions are expected.")
    parser.add_argument(
        "--keep_answerless_windows", type=float, default=defaults["keep_answerless_windows"],
        help="Show what this probability of keeping answerless training windows leaves (0 < P <= 1).",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed for --keep_answerless_windows.")
    parser.add_argument(
        "--max_answer_length", default=str(DEFAULTS.max_answer_length),
        help="Report the share of training answers longer than this many tokens; 'auto' shows what "
        f"the {ANSWER_LENGTH_PERCENTILE}th percentile (rounded up) resolves to.",
    )  # fmt: skip
    parser.add_argument("--output_file", help="Also write the full report as JSON here.")
    add_column_options(parser)
    return parser


def print_summary(summary: dict) -> None:
    for path, result in summary.items():
        print(f"== {path}")
        if "error" in result:
            print(f"  UNUSABLE: {result['error']}")
        for key, value in {**result.get("counts", {}), **{k: v for k, v in result.items() if isinstance(v, int)}}.items():
            print(f"  {key:28} {value}")
        tokens = result.get("answer_tokens") or {}
        if tokens.get("answers"):
            print(
                f"  answer tokens                min {tokens['min']}, median {tokens['median']:g}, p90 {tokens['p90']:g}, "
                f"p95 {tokens['p95']:g}, p99 {tokens['p99']:g}, max {tokens['max']} ({tokens['answers']} answers)"
            )
            print(
                f"  max_answer_length {tokens['max_answer_length']:<10} cuts {tokens['cut']} answers "
                f"({tokens['cut_fraction']:.2%})"
            )
        for line in result.get("warnings", []):
            logger.warning("%s: %s", path, line)
        for kind in ("dropped", "repaired"):
            lines = result.get(kind, [])
            for line in lines[:10]:
                print(f"  {kind} {line}")
            if len(lines) > 10:
                print(f"  ... {len(lines) - 10} more {kind} (all in --output_file)")


def main(argv: list[str] | None = None) -> int:
    """`python preprocess.py --check FILE ...`: validate data files without training."""
    options = build_check_parser().parse_args(argv)
    setup_logging(logging.WARNING)
    from slmqa.modeling.loading import load_tokenizer

    try:
        data_args = DataTrainingArguments(
            train_file=options.check[0],
            max_seq_length=options.max_seq_length,
            doc_stride=options.doc_stride,
            max_bad_fraction=options.max_bad_fraction,
            version_2_with_negative=options.version_2_with_negative,
            keep_answerless_windows=options.keep_answerless_windows,
            max_answer_length=options.max_answer_length,
            **{name: getattr(options, name) for name in vars(options) if name.endswith("_column")},
        )
        tokenizer = load_tokenizer(options.tokenizer)
    except (ConfigError, DataError) as err:
        logger.error("%s", err)
        return 2
    summary = check_files(options.check, data_args, tokenizer, seed=options.seed)
    print_summary(summary)
    if options.output_file:
        Path(options.output_file).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 2 if any("error" in r for r in summary.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
