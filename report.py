"""What a run leaves behind for people: a model card, a results summary and training curves.

The JSON files a run writes (all_results.json, data_report.json, run_args.json,
trainer_state.json) are complete but meant for programs. This module turns the same
information into three files someone can read, or publish with the model:

* README.md: a Hugging Face-style model card (front matter, data, hyperparameters,
  metrics, how to load and query the model),
* results.md: the outcome in a few sentences,
* training_curves.png: loss and EM/F1 against steps (only when matplotlib is installed,
  which is an optional dependency: see requirements-extra.txt).

Every input may be empty or partial (an evaluation-only run has no training metrics, a
run without --validation_file has no eval metrics), and only numbers that are present
are stated: nothing is estimated or filled in.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_FILE_ARG = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
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
HYPERPARAMETERS = {
    "QATrainingArguments": (
        "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
        "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps",
        "weight_decay", "max_grad_norm", "seed", "fp16", "bf16",
    ),
    "DataTrainingArguments": (
        "max_seq_length", "doc_stride", "max_answer_length", "n_best_size", "max_train_samples",
        "version_2_with_negative", "null_score_diff_threshold", "keep_answerless_windows",
    ),
    "LoraArguments": ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_bias", "merge_lora"),
}  # fmt: skip
PNG_NAME = "training_curves.png"
# Answers one question from the loaded `model` and `tokenizer` (first window, best span).
ANSWER_SNIPPET = """
question, context = "What is the torque setting?", "The torque setting is 40 Nm."
inputs = tokenizer(question, context, return_tensors="pt", truncation="only_second")
with torch.no_grad():
    out = model(**inputs)
start = int(out.start_logits[0].argmax())
end = start + int(out.end_logits[0, start:].argmax())
print(tokenizer.decode(inputs["input_ids"][0, start : end + 1]))
"""
CURVE_LABELS = {"eval_exact_match": "EM", "eval_exact": "EM", "eval_f1": "F1"}


def write_run_report(
    output_dir: str | Path,
    run_args: dict,
    data_report: dict,
    results: dict,
    log_history: list[dict],
) -> dict[str, Path]:
    """Write README.md, results.md and (if possible) training_curves.png into output_dir.

    Call it after the model is saved: for a LoRA run it replaces the placeholder model
    card that peft's save_pretrained writes. Returns {"README.md": path, ...} for the
    files actually written.
    """
    run = _RunView(Path(output_dir), run_args or {}, data_report or {}, results or {}, log_history or [])
    run.output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot = _write_training_curves(run.log_history, run.output_dir / PNG_NAME, run.eval_metric_names())
    if plot is not None:
        written[PNG_NAME] = plot
    for name, text in (("README.md", _model_card(run, plot is not None)), ("results.md", _results_summary(run))):
        path = run.output_dir / name
        path.write_text(text, encoding="utf-8")
        written[name] = path
    logger.info("Run report written to %s: %s", run.output_dir, ", ".join(written))
    return written


class _RunView:
    """Tolerant access to the four inputs: any of them may be empty, any key may be missing."""

    def __init__(self, output_dir: Path, run_args: dict, data_report: dict, results: dict, log_history: list[dict]):
        self.output_dir = output_dir
        self.run_args = run_args
        self.data_report = data_report
        self.results = results
        self.log_history = log_history

    def arg(self, group: str, name: str) -> Any:
        return (self.run_args.get(group) or {}).get(name)

    @property
    def base_model(self) -> str:
        return self.arg("ModelArguments", "model_name_or_path") or "unknown"

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


# --------------------------------------------------------------------------- formatting


def _format_value(key: str, value: Any) -> str:
    """Numbers as people compare them: scores with 2 decimals, thresholds and losses with 4."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key.endswith("runtime"):
            return _format_duration(value)
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


def _format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _yaml_scalar(value: str) -> str:
    """Plain when safe, else a JSON string (which is valid YAML): paths may hold ':' or '#'."""
    return value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) else json.dumps(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _score(results: dict, prefix: str, v2: bool) -> str | None:
    """'EM x / F1 y' for one split, or None when the split was not scored."""
    em = results.get(f"{prefix}_exact" if v2 else f"{prefix}_exact_match")
    f1 = results.get(f"{prefix}_f1")
    parts = [f"{name} {value:.2f}" for name, value in (("EM", em), ("F1", f1)) if isinstance(value, (int, float))]
    return " / ".join(parts) or None


# --------------------------------------------------------------------------- README.md


def _model_card(run: _RunView, has_plot: bool = False) -> str:
    """A model card in the Hugging Face layout: YAML front matter, then Markdown sections."""
    # An adapter folder is a peft artefact on the Hub (library_name: peft enables its loading snippet).
    library = "peft" if run.lora else "transformers"
    tags = ["extractive-qa", "squad"] + (["squad_v2"] if run.v2 else []) + (["lora"] if run.lora else [])
    front = [
        "---",
        f"library_name: {library}",
        "pipeline_tag: question-answering",
        f"base_model: {_yaml_scalar(run.base_model)}",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "---",
    ]
    sections = [
        "\n".join(front),
        f"# {run.output_dir.name or 'QA model'}",
        _about_section(run),
        _data_section(run),
        _hyperparameter_section(run),
        _results_section(run, has_plot),
        _usage_section(run),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _about_section(run: _RunView) -> str:
    task = (
        "SQuAD v2.0 style: some questions have no answer in the document, and the model can answer "
        '"no answer" (empty string)'
        if run.v2
        else "SQuAD v1.1 style: every question is answered by a span of the document"
    )
    if run.trained is None:
        training = "not recorded (no run_args.json or training metrics given)."
    elif not run.trained:
        training = "not trained in this run (evaluation only); the weights are those of the base model."
    elif run.lora:
        r, alpha = run.arg("LoraArguments", "lora_r"), run.arg("LoraArguments", "lora_alpha")
        detail = f" (r={r}, alpha={alpha})" if r is not None and alpha is not None else ""
        training = (
            f"LoRA{detail}: this folder holds an adapter plus the trained question-answering head, not a full "
            "model; it loads on top of the base model with peft (see below)."
        )
        if run.arg("LoraArguments", "merge_lora"):
            training += " `merged/` holds the same model with the adapter folded in, loadable without peft."
    else:
        training = "full fine-tuning (all weights)."
    return "\n".join(
        [
            (
                "Extractive question answering: given a question and a document, the model points at the span of "
                "the document that answers it. Trained with `run_qa.py` (slm-qa)."
            ),
            "",
            f"- **Base model:** `{run.base_model}`",
            f"- **Task:** {task}.",
            f"- **Training:** {training}",
        ]
    )


def _data_section(run: _RunView) -> str:
    rows = []
    for split in [s for s in SPLITS if s in run.data_report] + [s for s in run.data_report if s not in SPLITS]:
        counts = run.counts(split)
        rows.append([split, f"`{run.source(split) or '?'}`"] + [str(counts.get(c, "")) for c in DATA_COUNTS])
    if not rows:
        files = [(s, run.source(s)) for s in SPLITS if run.source(s)]
        if not files:
            return ""
        return "## Data\n\n" + "\n".join(f"- {split}: `{source}`" for split, source in files)
    header = ["split", "file"] + [c.replace("_", " ") for c in DATA_COUNTS]
    return (
        "## Data\n\n"
        + _table(header, rows)
        + "\n\nRecords are questions; *kept* ones were used. Repaired spans were moved to the exact occurrence of "
        "the answer text; dropped records and the reasons are listed in `data_report.json`."
    )


def _hyperparameter_section(run: _RunView) -> str:
    if not run.trained:
        return ""
    rows = []
    for group, names in HYPERPARAMETERS.items():
        if group == "LoraArguments" and not run.lora:
            continue
        for name in names:
            value = run.arg(group, name)
            if value is None or (name in ("fp16", "bf16") and not value):
                continue
            if name == "null_score_diff_threshold" and not run.v2:
                continue
            if name == "keep_answerless_windows" and value == 1:
                continue  # the default: every window was trained on
            if name == "num_train_epochs" and (run.arg(group, "max_steps") or 0) > 0:
                continue  # max_steps overrides the epoch count
            if name == "max_steps" and value <= 0:
                continue
            shown = f"{value:g}" if isinstance(value, float) else _format_value(name, value)
            rows.append([f"`{name}`", shown])
    if not rows:
        return ""
    table = _table(["argument", "value"], rows)
    return f"## Training hyperparameters\n\n{table}\n\nEvery resolved argument is in `run_args.json`."


def _results_section(run: _RunView, has_plot: bool) -> str:
    metrics = run.metrics()
    if not metrics:
        return ""
    scale = "SQuAD v2.0" if run.v2 else "SQuAD v1.1"
    text = (
        f"## Results\n\nExact match (EM) and F1 are the official {scale} metrics, in percent; `eval_*` is the "
        "validation file, `predict_*` the test file.\n\n"
        + _table(["metric", "value"], [[f"`{key}`", _format_value(key, value)] for key, value in metrics])
    )
    if has_plot:
        text += f"\n\n![Training loss and evaluation scores by step]({PNG_NAME})"
    return text


def _usage_section(run: _RunView) -> str:
    path = run.model_path
    literal = json.dumps(path)  # a valid Python string literal for any path
    if run.lora:
        load = (
            "from peft import AutoPeftModelForQuestionAnswering\n"
            "from transformers import AutoTokenizer\n\n"
            f"model = AutoPeftModelForQuestionAnswering.from_pretrained({literal})  # base model + adapter\n"
        )
    else:
        load = (
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n\n"
            f"model = AutoModelForQuestionAnswering.from_pretrained({literal})\n"
        )
    load += f"tokenizer = AutoTokenizer.from_pretrained({literal})\n"
    parts = ["## How to use", "```python\nimport torch\n" + load + ANSWER_SNIPPET + "```"]
    if run.lora:
        parts.append("The adapter needs `pip install peft` and the base model at the path in `adapter_config.json`.")
        if run.arg("LoraArguments", "merge_lora"):
            parts.append(
                "Without peft, load the merged copy: "
                f"`AutoModelForQuestionAnswering.from_pretrained({json.dumps(path + '/merged')})` "
                f"(and `AutoTokenizer.from_pretrained({json.dumps(path + '/merged')})`)."
            )
    parts.append(
        "This snippet reads only the first window of the document and takes its best span. For long documents "
        "(sliding windows) and the n-best decoding used in evaluation"
        + (", with the no-answer threshold," if run.v2 else "")
        + " use the project's `qa_predict.py`:"
    )
    parts.append("```bash\n" + _qa_predict_command(run) + "\n```")
    settings = "its window settings (`max_seq_length`, `doc_stride`, `max_answer_length`)"
    if run.v2:
        settings += f" and its no-answer threshold ({_threshold(run)}"
        if isinstance(run.results.get("eval_best_f1_thresh"), (int, float)):
            settings += ", `eval_best_f1_thresh`: the best one on the validation file"
        settings += ")"
    parts.append(f"`qa_predict.py` reads {settings} from `qa_settings.json` in the model folder; flags override them.")
    return "\n\n".join(parts)


def _qa_predict_command(run: _RunView) -> str:
    """Window settings and (v2) the no-answer threshold come from the model's qa_settings.json."""
    return f'python qa_predict.py --tuned_model {shlex.quote(run.model_path)} --context_file doc.txt --question "..."'


def _threshold(run: _RunView) -> str:
    """The evaluated best threshold when there is one, else the threshold the run used."""
    best = run.results.get("eval_best_f1_thresh")
    if isinstance(best, (int, float)):
        return f"{best:.4f}"
    used = run.arg("DataTrainingArguments", "null_score_diff_threshold")
    return _format_value("null_score_diff_threshold", float(used if used is not None else 0.0))


# --------------------------------------------------------------------------- results.md


def _results_summary(run: _RunView) -> str:
    """The outcome in sentences; each sentence appears only when its numbers are present."""
    paragraphs = [_training_sentence(run), _split_sentences(run, "eval"), _split_sentences(run, "predict")]
    paragraphs.append(_data_sentence(run))
    body = "\n\n".join(p for p in paragraphs if p) or "This run produced no metrics."
    return f"# Results: {run.output_dir.name or 'run'}\n\n{body}\n"


def _training_sentence(run: _RunView) -> str:
    r = run.results
    if run.trained is None:
        return ""
    if not run.trained:
        evaluated = any(k.startswith(("eval_", "predict_")) for k in r)
        return f"No training in this run: `{run.base_model}` was {'evaluated' if evaluated else 'used'} as given."
    sentence = f"{'Trained LoRA adapters for' if run.lora else 'Fine-tuned'} `{run.base_model}`"
    questions = run.counts("train").get("kept")
    if questions is not None:
        sentence += f" on {questions} training questions"
        if isinstance(r.get("train_features"), int):
            sentence += f" ({r['train_features']} windows)"
    step = run.last_step()
    if step is not None:
        sentence += f" for {step} step{'s' if step != 1 else ''}"
        if isinstance(r.get("epoch"), (int, float)):
            sentence += f" ({r['epoch']:.3g} epoch{'s' if r['epoch'] != 1 else ''})"
    if isinstance(r.get("train_runtime"), (int, float)):
        sentence += f" in {_format_duration(r['train_runtime'])}"
    sentence += "."
    if isinstance(r.get("train_loss"), (int, float)):
        sentence += f" Average training loss: {r['train_loss']:.4f}."
    return sentence


def _split_sentences(run: _RunView, prefix: str) -> str:
    r = run.results
    split = "validation" if prefix == "eval" else "test"
    where = f"`{run.source(split)}`" if run.source(split) else f"the {split} data"
    n = r.get(f"{prefix}_examples")
    where += f" ({n} questions)" if isinstance(n, int) else ""
    score = _score(r, prefix, run.v2)
    if score is None:
        if f"{prefix}_examples" in r and prefix == "predict":
            return f"Answers to {where} are in `predict_predictions.json` (no gold answers, so no score)."
        return ""
    metric = "SQuAD v2.0" if run.v2 else "SQuAD v1.1"
    text = f"On {where} it reaches {score} ({metric} metrics"
    if run.v2:
        used = run.arg("DataTrainingArguments", "null_score_diff_threshold")
        if isinstance(used, (int, float)):
            text += f", no-answer threshold {_format_value('null_score_diff_threshold', float(used))}"
    text += ")."
    if run.v2:
        for subset, label in (("HasAns", "answerable"), ("NoAns", "unanswerable")):
            sub = _score(r, f"{prefix}_{subset}", v2=True)
            if sub is not None:
                total = r.get(f"{prefix}_{subset}_total")
                text += f" On {label} questions{f' ({total})' if isinstance(total, int) else ''}: {sub}."
        best, thresh = r.get(f"{prefix}_best_f1"), r.get(f"{prefix}_best_f1_thresh")
        if prefix == "eval" and isinstance(best, (int, float)) and isinstance(thresh, (int, float)):
            text += (
                f" The best no-answer threshold on this set gives F1 {best:.2f}: "
                f"`--null_score_diff_threshold {thresh:.4f}`, saved in qa_settings.json, which qa_predict.py uses "
                "by default (it was chosen on this same set, so expect a little less on new data)."
            )
    if prefix == "eval":
        text += _best_during_training(run)
    return text


def _best_during_training(run: _RunView) -> str:
    """The best evaluation score seen while training, when evaluation ran at several steps."""
    f1_by_step = {
        int(e["step"]): e["eval_f1"]
        for e in run.log_history
        if isinstance(e.get("eval_f1"), (int, float)) and isinstance(e.get("step"), (int, float))
    }
    if len(f1_by_step) < 2:
        return ""
    step = max(f1_by_step, key=lambda s: (f1_by_step[s], -s))
    return f" The best evaluation F1 during training was {f1_by_step[step]:.2f} at step {step}."


def _data_sentence(run: _RunView) -> str:
    if not run.data_report:
        return ""
    repaired, dropped = run.total("repaired_spans"), run.total("dropped_records")
    text = f"Data: {_plural(repaired, 'answer span')} repaired, {_plural(dropped, 'record')} dropped"
    unlocated = run.total("unlocated_spans")
    if unlocated:
        text += f", {unlocated} evaluation answers not found in their context (kept; scored by text)"
    return text + " (see `data_report.json`)."


# --------------------------------------------------------------------------- training_curves.png


def _series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity; a step logged twice keeps its last value."""
    by_step = {
        int(e["step"]): float(e[key])
        for e in log_history
        if isinstance(e.get(key), (int, float)) and isinstance(e.get("step"), (int, float))
    }
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _write_training_curves(log_history: list[dict], path: Path, eval_keys: tuple[str, ...]) -> Path | None:
    """Plot loss and eval scores by step; None when matplotlib is missing or there is no curve to draw.

    Uses a bare Figure on an Agg canvas rather than pyplot, so a host program's
    matplotlib backend and global figure state are left untouched.
    """
    loss = _series(log_history, "loss")
    scores = {key: _series(log_history, key) for key in eval_keys}
    scores = {key: series for key, series in scores.items() if series[0]}
    # One point is not a curve: an evaluation-only run logs a single eval entry.
    if len(loss[0]) < 2 and all(len(steps) < 2 for steps, _ in scores.values()):
        logger.info("No training curves to plot (fewer than two logged steps); skipping %s.", path.name)
        return None
    try:
        _draw(path, loss, scores)
    except ImportError:
        logger.warning("matplotlib is not installed: pip install matplotlib to get %s.", path.name)
        return None
    except Exception:  # a cosmetic file must not fail a run that has finished its real work
        logger.warning("Could not draw %s.", path.name, exc_info=True)
        return None
    return path


def _draw(path: Path, loss: tuple[list[int], list[float]], scores: dict[str, tuple[list[int], list[float]]]) -> None:
    """Loss on the left, EM/F1 on the right; a panel without data is left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in ("loss", "scores") if (loss[0] if p == "loss" else scores)]
    figure = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        if panel == "loss":
            ax.plot(*loss, marker="o", markersize=3, label="training loss")
            ax.set_ylabel("loss")
            ax.set_title("Training loss")
        else:
            for key, series in scores.items():
                ax.plot(*series, marker="o", markersize=3, label=CURVE_LABELS.get(key, key))
            ax.set_ylabel("score (%)")
            ax.set_title("Evaluation")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=120)
