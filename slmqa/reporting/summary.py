"""results.md: the outcome of a run in a few sentences; each appears only when its numbers are present."""

from __future__ import annotations

from slmqa.reporting.run_view import RunView, em_f1_text, format_duration, format_value, plural


def results_summary(run: RunView) -> str:
    """The outcome in sentences; each sentence appears only when its numbers are present."""
    paragraphs = [_training_sentence(run), _split_sentences(run, "eval"), _split_sentences(run, "predict")]
    paragraphs.append(_data_sentence(run))
    body = "\n\n".join(p for p in paragraphs if p) or "This run produced no metrics."
    return f"# Results: {run.output_dir.name or 'run'}\n\n{body}\n"


def _training_sentence(run: RunView) -> str:
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
        sentence += f" in {format_duration(r['train_runtime'])}"
    sentence += "."
    if isinstance(r.get("train_loss"), (int, float)):
        sentence += f" Average training loss: {r['train_loss']:.4f}."
    return sentence


def _split_sentences(run: RunView, prefix: str) -> str:
    r = run.results
    split = "validation" if prefix == "eval" else "test"
    where = f"`{run.source(split)}`" if run.source(split) else f"the {split} data"
    n = r.get(f"{prefix}_examples")
    where += f" ({n} questions)" if isinstance(n, int) else ""
    score = em_f1_text(r, prefix, run.v2)
    if score is None:
        if f"{prefix}_examples" in r and prefix == "predict":
            return f"Answers to {where} are in `predict_predictions.json` (no gold answers, so no score)."
        return ""
    metric = "SQuAD v2.0" if run.v2 else "SQuAD v1.1"
    text = f"On {where} it reaches {score} ({metric} metrics"
    if run.v2:
        used = run.arg("DataTrainingArguments", "null_score_diff_threshold")
        if isinstance(used, (int, float)):
            text += f", no-answer threshold {format_value('null_score_diff_threshold', float(used))}"
    text += ")."
    if run.v2:
        for subset, label in (("HasAns", "answerable"), ("NoAns", "unanswerable")):
            sub = em_f1_text(r, f"{prefix}_{subset}", v2=True)
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


def _best_during_training(run: RunView) -> str:
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


def _data_sentence(run: RunView) -> str:
    if not run.data_report:
        return ""
    repaired, dropped = run.total("repaired_spans"), run.total("dropped_records")
    text = f"Data: {plural(repaired, 'answer span')} repaired, {plural(dropped, 'record')} dropped"
    unlocated = run.total("unlocated_spans")
    if unlocated:
        text += f", {unlocated} evaluation answers not found in their context (kept; scored by text)"
    return text + " (see `data_report.json`)."
