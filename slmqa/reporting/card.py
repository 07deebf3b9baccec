"""What a run leaves behind for people: the model card, plus results.md and training_curves.png.

The JSON files a run writes (all_results.json, data_report.json, run_args.json,
trainer_state.json) are complete but meant for programs. `write_run_report` turns the
same information into three files someone can read, or publish with the model. This
module owns README.md, a Hugging Face model card made with huggingface_hub's `ModelCard`
(metadata with the licence and `model-index` results, so the Hub shows the metrics; then
data, hyperparameters, metrics, how to load and query the model); results.md is
summary.py, training_curves.png (only with matplotlib, an optional dependency: see
requirements-extra.txt) is curves.py, and run_view.py reads the inputs.

Every input may be empty or partial (an evaluation-only run has no training metrics, a
run without --validation_file has no eval metrics), and only numbers that are present
are stated: nothing is estimated or filled in.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from slmqa.reporting.curves import PNG_NAME, write_training_curves
from slmqa.reporting.run_view import DATA_COUNTS, SPLITS, RunView, format_value, markdown_table
from slmqa.reporting.summary import results_summary

logger = logging.getLogger(__name__)

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
# Answers one question from the loaded `model` and `tokenizer` as evaluation decodes a window:
# only context tokens start or end an answer, end >= start, at most MAX_ANSWER_LENGTH tokens,
# the best start + end logit sum wins, and (v2) "no answer" when the CLS score beats it by more
# than the threshold. Placeholders are filled from the run's arguments.
ANSWER_SNIPPET = """
question, context = "What is the torque setting?", "The torque setting is 40 Nm."
inputs = tokenizer(question, context, return_tensors="pt", truncation="only_second", return_offsets_mapping=True)
offsets = inputs.pop("offset_mapping")[0].tolist()
with torch.no_grad():
    out = model(**inputs)
is_context = torch.tensor([s == 1 for s in inputs.sequence_ids(0)])
starts = out.start_logits[0].masked_fill(~is_context, -float("inf"))
ends = out.end_logits[0].masked_fill(~is_context, -float("inf"))
n = len(is_context)
valid = torch.ones(n, n, dtype=torch.bool).triu().tril(MAX_ANSWER_LENGTH - 1)  # end - start in [0, max - 1]
scores = (starts[:, None] + ends[None, :]).masked_fill(~valid, -float("inf"))
start, end = divmod(int(scores.argmax()), n)
answer = context[offsets[start][0] : offsets[end][1]]
"""
NULL_SNIPPET = """null_score = float(out.start_logits[0, 0] + out.end_logits[0, 0])  # the CLS token: "no answer"
if null_score - float(scores.max()) > NULL_THRESHOLD:
    answer = ""
"""


def write_run_report(
    output_dir: str | Path,
    run_args: dict,
    data_report: dict,
    results: dict,
    log_history: list[dict],
    calibration: dict | None = None,
) -> dict[str, Path]:
    """Write README.md, results.md and (if possible) training_curves.png into output_dir.

    Call it after the model is saved: for a LoRA run it replaces the placeholder model
    card that peft's save_pretrained writes. `calibration`: the answer-confidence fit
    (`CalibrationFit.report()`: the calibration record and risk-coverage rows), when there
    was one. Returns {"README.md": path, ...} for the files actually written.
    """
    run = RunView(Path(output_dir), run_args or {}, data_report or {}, results or {}, log_history or [], calibration)
    run.output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot = write_training_curves(run.log_history, run.output_dir / PNG_NAME, run.eval_metric_names())
    if plot is not None:
        written[PNG_NAME] = plot
    for name, text in (("README.md", _model_card(run, plot is not None)), ("results.md", results_summary(run))):
        path = run.output_dir / name
        path.write_text(text, encoding="utf-8")
        written[name] = path
    logger.info("Run report written to %s: %s", run.output_dir, ", ".join(written))
    return written


# --------------------------------------------------------------------------- README.md


def _model_card(run: RunView, has_plot: bool = False) -> str:
    """A model card in the Hugging Face layout: metadata (YAML front matter), then Markdown sections."""
    sections = [
        f"# {run.output_dir.name or 'QA model'}",
        _about_section(run),
        _data_section(run),
        _hyperparameter_section(run),
        _results_section(run, has_plot),
        _confidence_section(run),
        _usage_section(run),
    ]
    body = "\n\n".join(s for s in sections if s) + "\n"
    return str(ModelCard(f"---\n{card_data(run).to_yaml()}\n---\n\n{body}"))


# Scores as the Hub's model-index names them, by the run's metric names (v1.1 and v2.0 both).
INDEXED_METRICS = {"exact_match": "Exact match", "exact": "Exact match", "f1": "F1"}
SPLIT_OF_PREFIX = {"eval": "validation", "predict": "test"}


def card_data(run: RunView) -> ModelCardData:
    """The card's metadata: library, task, base model, tags, licence and the scored splits as model-index results."""
    # An adapter folder is a peft artefact on the Hub (library_name: peft enables its loading snippet).
    library = "peft" if run.lora else "transformers"
    tags = ["extractive-qa", "squad"] + (["squad_v2"] if run.v2 else []) + (["lora"] if run.lora else [])
    results = _eval_results(run)
    return ModelCardData(
        library_name=library,
        pipeline_tag="question-answering",
        base_model=run.base_model,
        license=run.license,
        tags=tags,
        model_name=(run.output_dir.name or "QA model") if results else None,
        eval_results=results or None,
    )


def _eval_results(run: RunView) -> list[EvalResult]:
    """EM and F1 of every scored split, with the file or Hub dataset it was scored on."""
    results = []
    for prefix, split in SPLIT_OF_PREFIX.items():
        source = run.source(split)
        for metric, name in INDEXED_METRICS.items():
            value = run.results.get(f"{prefix}_{metric}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not source:
                continue
            results.append(
                EvalResult(
                    task_type="question-answering",
                    task_name="Extractive question answering",
                    dataset_type=source.split(":")[0] if ":" in source else Path(source).name,
                    dataset_name=source,
                    dataset_split=split,
                    metric_type=metric,
                    metric_name=f"{name} ({'SQuAD v2.0' if run.v2 else 'SQuAD v1.1'})",
                    metric_value=round(float(value), 4),
                )
            )
    return results


def _about_section(run: RunView) -> str:
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


def _data_section(run: RunView) -> str:
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
        + markdown_table(header, rows)
        + "\n\nRecords are questions; *kept* ones were used. Repaired spans were moved to the exact occurrence of "
        "the answer text; every dropped record (with its reason) and every repaired one is listed in `data_report.json`."
    )


def _hyperparameter_section(run: RunView) -> str:
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
            shown = f"{value:g}" if isinstance(value, float) else format_value(name, value)
            rows.append([f"`{name}`", shown])
    if not rows:
        return ""
    table = markdown_table(["argument", "value"], rows)
    return f"## Training hyperparameters\n\n{table}\n\nEvery resolved argument is in `run_args.json`."


def _results_section(run: RunView, has_plot: bool) -> str:
    metrics = run.metrics()
    if not metrics:
        return ""
    scale = "SQuAD v2.0" if run.v2 else "SQuAD v1.1"
    text = (
        f"## Results\n\nExact match (EM) and F1 are the official {scale} metrics, in percent; `eval_*` is the "
        "validation file, `predict_*` the test file.\n\n"
        + markdown_table(["metric", "value"], [[f"`{key}`", format_value(key, value)] for key, value in metrics])
    )
    if has_plot:
        text += f"\n\n![Training loss and evaluation scores by step]({PNG_NAME})"
    return text


def _confidence_section(run: RunView) -> str:
    """How far the answer probability can be trusted: ECE before/after calibration and a risk-coverage table."""
    report = run.calibration or {}
    record, rows = report.get("calibration") or {}, report.get("risk_coverage") or []
    if not record:
        return ""
    before, after = record.get("ece_before"), record.get("ece_after")
    parameters = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k in ("temperature", "slope", "intercept"))
    lines = [
        "## Answer confidence",
        "",
        f"An answer's `probability` is calibrated ({record.get('method')} scaling: {parameters}; fitted on "
        f"{record.get('fitted_on')} validation answers, saved in `qa_settings.json`), so that it estimates how often "
        "such an answer is right (right: SQuAD F1 >= 0.5 against the gold answers; for SQuAD v2 an empty answer to "
        "an unanswerable question is right). `softmax_probability` keeps the uncalibrated softmax over the question's "
        "candidate answers.",
    ]
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        lines += [
            "",
            f"Expected calibration error (10 bins) on the validation answers: **{before:.4f}** uncalibrated, "
            f"**{after:.4f}** calibrated (out of fold: each answer's probability comes from a fit on the other folds).",
        ]
    if record.get("selection"):
        lines += ["", f"Method chosen by {record['selection']}."]
    if rows:
        table = [
            [
                f"{row['confidence']:.3f}", str(row["answered"]), f"{100 * row['coverage']:.1f}%",
                "" if row.get("f1") is None else f"{row['f1']:.2f}",
                "" if row.get("accuracy") is None else f"{100 * row['accuracy']:.1f}%",
            ]
            for row in rows
        ]  # fmt: skip
        lines += [
            "",
            "Risk and coverage: answering only when the calibrated probability is at least *c* (the other questions "
            "get no answer), on the validation questions.",
            "",
            markdown_table(["c", "answered", "coverage", "F1 of answered", "right of answered"], table),
        ]
    return "\n".join(lines)


def _usage_section(run: RunView) -> str:
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
    parts = ["## How to use", "```python\nimport torch\n" + load + _answer_snippet(run) + "```"]
    if run.lora:
        parts.append("The adapter needs `pip install peft` and the base model at the path in `adapter_config.json`.")
        if run.arg("LoraArguments", "merge_lora"):
            parts.append(
                "Without peft, load the merged copy: "
                f"`AutoModelForQuestionAnswering.from_pretrained({json.dumps(path + '/merged')})` "
                f"(and `AutoTokenizer.from_pretrained({json.dumps(path + '/merged')})`)."
            )
    parts.append(
        "This snippet reads only the first window of the document and decodes it as evaluation does. For long "
        "documents (sliding windows) and the n-best decoding used in evaluation"
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


def _answer_snippet(run: RunView) -> str:
    """The snippet with this run's max_answer_length (and, v2, its no-answer threshold) filled in."""
    max_length = run.arg("DataTrainingArguments", "max_answer_length")
    snippet = ANSWER_SNIPPET.replace("MAX_ANSWER_LENGTH", str(max_length if isinstance(max_length, int) else 30))
    if run.v2:
        snippet += NULL_SNIPPET.replace("NULL_THRESHOLD", _threshold(run))
    return snippet + "print(answer)\n"


def _qa_predict_command(run: RunView) -> str:
    """Window settings and (v2) the no-answer threshold come from the model's qa_settings.json."""
    return f'python qa_predict.py --tuned_model {shlex.quote(run.model_path)} --context_file doc.txt --question "..."'


def _threshold(run: RunView) -> str:
    """The evaluated best threshold when there is one, else the threshold the run used."""
    best = run.results.get("eval_best_f1_thresh")
    if isinstance(best, (int, float)):
        return f"{best:.4f}"
    used = run.arg("DataTrainingArguments", "null_score_diff_threshold")
    return format_value("null_score_diff_threshold", float(used if used is not None else 0.0))
