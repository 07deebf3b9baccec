"""What a finished run's records say, read tolerantly, and how its numbers are shown.

`RunView` reads the four inputs of a run report (run_args.json, data_report.json, the
results and the log history), and the answer-confidence calibration when there was one;
any of them may be empty or partial, and only numbers that are present are used. The
formatting helpers are shared by the model card (card.py) and the summary (summary.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from slmqa.data.splits import SPLIT_FILE_ARG, SPLITS

# Columns of the data table, in the order data_report.json gives them.
DATA_COUNTS = ("records", "kept", "answerable", "unanswerable", "repaired_spans", "dropped_records")
# run_qa.py also puts `<split>_<count>` data counts into its results; they belong to the
# data table, not to the metrics table.
ALL_DATA_COUNTS = DATA_COUNTS + (
    "unlocated_spans", "skipped_by_max_samples",
    "windows", "windows_kept", "answer_windows", "answerless_windows", "answerless_windows_kept",
)  # fmt: skip
# Quality metrics first in the table, in the order people read them.
METRIC_ORDER = (
    "loss", "exact_match", "exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
    "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
)  # fmt: skip


class RunView:
    """Tolerant access to the four inputs: any of them may be empty, any key may be missing."""

    def __init__(
        self,
        output_dir: Path,
        run_args: dict,
        data_report: dict,
        results: dict,
        log_history: list[dict],
        calibration: dict | None = None,
    ):
        self.output_dir = output_dir
        self.run_args = run_args
        self.data_report = data_report
        self.results = results
        self.log_history = log_history
        self.calibration = calibration or {}  # answer-confidence fit: {"calibration": record, "risk_coverage": rows}

    def arg(self, group: str, name: str) -> Any:
        return (self.run_args.get(group) or {}).get(name)

    @property
    def base_model(self) -> str:
        return self.arg("ModelArguments", "model_name_or_path") or "unknown"

    @property
    def license(self) -> str:
        """The licence chosen for the run (--license), else the base model card's, else "unknown"."""
        return self.arg("ModelArguments", "license") or base_model_license(self.base_model) or "unknown"

    @property
    def v2(self) -> bool:
        flag = self.arg("DataTrainingArguments", "version_2_with_negative")
        if flag is not None:
            return bool(flag)
        return any(key.endswith(("_HasAns_f1", "_NoAns_f1", "_best_f1")) for key in self.results)

    @property
    def lora(self) -> bool:
        return bool(self.arg("LoraArguments", "use_lora"))

    @property
    def trained(self) -> bool | None:
        """Whether this run trained; None when neither the arguments nor the results say."""
        flag = self.arg("QATrainingArguments", "do_train")
        if flag is not None:
            return bool(flag)
        return True if any(k.startswith("train_") and k[6:] not in ALL_DATA_COUNTS for k in self.results) else None

    @property
    def model_path(self) -> str:
        return self.output_dir.as_posix()

    def counts(self, split: str) -> dict:
        return (self.data_report.get(split) or {}).get("counts") or {}

    def source(self, split: str) -> str | None:
        source = (self.data_report.get(split) or {}).get("source")
        return source or self.arg("DataTrainingArguments", SPLIT_FILE_ARG[split]) or None

    def total(self, count: str) -> int:
        return sum(int(self.counts(split).get(count) or 0) for split in self.data_report)

    def last_step(self) -> int | None:
        steps = [entry["step"] for entry in self.log_history if isinstance(entry.get("step"), (int, float))]
        return int(max(steps)) if steps else None

    def eval_metric_names(self) -> tuple[str, str]:
        return ("eval_exact", "eval_f1") if self.v2 else ("eval_exact_match", "eval_f1")

    def metrics(self) -> list[tuple[str, Any]]:
        """train_*, eval_* and predict_* results (plus epoch), quality metrics first, data counts left out."""
        data_keys = {f"{split}_{count}" for split in SPLITS for count in ALL_DATA_COUNTS}
        prefixes = ("train", "eval", "predict")

        def order(key: str) -> tuple:
            prefix, _, bare = key.partition("_")
            rank = METRIC_ORDER.index(bare) if bare in METRIC_ORDER else len(METRIC_ORDER)
            return (prefixes.index(prefix) if prefix in prefixes else len(prefixes), rank, key)

        keys = [k for k in self.results if k.split("_")[0] in prefixes and k not in data_keys]
        keys += [k for k in ("epoch",) if k in self.results]
        return [(key, self.results[key]) for key in sorted(keys, key=order)]


def base_model_license(base_model: str) -> str | None:
    """The licence in a local base model's card (README.md front matter); None when there is none to read."""
    card = Path(base_model) / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        license_name = ModelCard.load(card).data.license
    except Exception:  # a malformed card only costs the licence line
        return None
    return license_name if isinstance(license_name, str) else None


def format_value(key: str, value: Any) -> str:
    """Numbers as people compare them: scores with 2 decimals, thresholds and losses with 4."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key.endswith("runtime"):
            return format_duration(value)
        if key.endswith("learning_rate"):
            return f"{value:.4g}"
        if key.endswith(("_thresh", "_threshold", "loss")):
            return f"{value:.4f}"
        if key.endswith("flos"):
            return f"{value:.3g}"
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def em_f1_text(results: dict, prefix: str, v2: bool) -> str | None:
    """'EM x / F1 y' for one split, or None when the split was not scored."""
    em = results.get(f"{prefix}_exact" if v2 else f"{prefix}_exact_match")
    f1 = results.get(f"{prefix}_f1")
    parts = [f"{name} {value:.2f}" for name, value in (("EM", em), ("F1", f1)) if isinstance(value, (int, float))]
    return " / ".join(parts) or None
