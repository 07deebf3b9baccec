"""slmqa.reporting: model card, results summary and training curves from a run's records (no training here)."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from args import parse_args, resolved_arguments
from slmqa.reporting import curves
from slmqa.reporting.card import write_run_report

try:
    import matplotlib  # noqa: F401 - optional (requirements-extra.txt)

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_args(tmp_path: Path, *extra: str) -> dict:
    """run_args.json as run_qa.py writes it, from the real argument classes."""
    argv = [
        "--model_name_or_path", "models/all-MiniLM-L6-v2",
        "--train_file", "data/mock/train.json", "--validation_file", "data/mock/dev.json",
        "--test_file", "data/mock/test.json", "--output_dir", str(tmp_path / "run"),
        "--learning_rate", "1e-4", "--num_train_epochs", "3", "--max_seq_length", "256", "--doc_stride", "64",
        "--do_train", "--do_eval", "--do_predict", *extra,
    ]  # fmt: skip
    return resolved_arguments(*parse_args(argv))


def split_report(source: str, records: int, dropped: int = 0, repaired: int = 0, unanswerable: int = 0) -> dict:
    """One split of Preprocess.report()."""
    kept = records - dropped
    counts = {
        "records": records,
        "kept": kept,
        "answerable": kept - unanswerable,
        "unanswerable": unanswerable,
        "repaired_spans": repaired,
        "dropped_records": dropped,
        "unlocated_spans": 0,
        "skipped_by_max_samples": 0,
    }
    defects = [{"index": 3, "id": "q3", "field": "question", "reason": "empty question"}] * dropped
    return {
        "source": source,
        **{k: v for k, v in counts.items() if k != "dropped_records"},
        "dropped": defects,
        "counts": counts,
    }


def data_report(v2: bool = False) -> dict:
    return {
        "train": split_report("data/mock/train.json", 120, dropped=1, repaired=2, unanswerable=30 if v2 else 0),
        "validation": split_report("data/mock/dev.json", 40, unanswerable=10 if v2 else 0),
        "test": split_report("data/mock/test.json", 40, unanswerable=10 if v2 else 0),
    }


def data_counts(report: dict) -> dict:
    """The `<split>_<count>` keys run_qa.py adds to its results."""
    return {f"{split}_{k}": v for split, r in report.items() for k, v in r["counts"].items()}


TRAIN_RESULTS = {
    "epoch": 3.0,
    "total_flos": 49587840.0,
    "train_loss": 1.234567,
    "train_features": 131,
    "train_runtime": 125.4,
    "train_samples_per_second": 3.448,
    "train_steps_per_second": 0.431,
}
V1_EVAL = {"eval_exact_match": 72.5, "eval_f1": 80.123, "eval_examples": 40, "eval_features": 44, "eval_runtime": 1.5}
V1_PREDICT = {"predict_exact_match": 70.0, "predict_f1": 78.456, "predict_examples": 40, "predict_features": 43}
V2_EVAL = {
    "eval_exact": 65.0, "eval_f1": 70.5, "eval_total": 40,
    "eval_HasAns_exact": 60.0, "eval_HasAns_f1": 67.333, "eval_HasAns_total": 30,
    "eval_NoAns_exact": 80.0, "eval_NoAns_f1": 80.0, "eval_NoAns_total": 10,
    "eval_best_exact": 67.5, "eval_best_exact_thresh": -1.25, "eval_best_f1": 72.25, "eval_best_f1_thresh": -1.5,
    "eval_examples": 40, "eval_features": 44,
}  # fmt: skip


def log_history(eval_key: str = "eval_exact_match") -> list[dict]:
    """trainer.state.log_history of a 3-epoch run with evaluation each epoch and a final evaluation."""
    history = []
    for step in (5, 10, 15, 20, 25, 30):
        history.append({"epoch": step / 10, "step": step, "loss": 5.0 / step, "learning_rate": 1e-4, "grad_norm": 3.0})
        if step % 10 == 0:
            history.append({"epoch": step / 10, "step": step, eval_key: 20.0 + step * 2, "eval_f1": 30.0 + step * 2})
    history.append({"epoch": 3.0, "step": 30, "train_loss": 1.234567, "train_runtime": 125.4})
    history.append({"epoch": 3.0, "step": 30, eval_key: 80.0, "eval_f1": 90.0})
    return history


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_v1_full_fine_tuning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # models/all-MiniLM-L6-v2 is not here: no base model card to read a licence from
    out = tmp_path / "run"
    report = data_report()
    results = TRAIN_RESULTS | V1_EVAL | V1_PREDICT | data_counts(report)
    written = write_run_report(out, run_args(tmp_path), report, results, log_history())

    assert {"README.md", "results.md"} <= set(written)
    assert all(path.is_file() and path.parent == out for path in written.values())
    readme = (out / "README.md").read_text(encoding="utf-8")
    meta = front_matter(readme)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "question-answering"
    assert meta["base_model"] == "models/all-MiniLM-L6-v2"
    assert {"extractive-qa", "squad"} <= set(meta["tags"])
    assert meta["license"] == "unknown"  # no card of the base model to take it from (see test_licence_*)
    assert "SQuAD v1.1" in readme and "full fine-tuning" in readme
    # Data table: one row per split with its counts (records, kept, answerable, unanswerable, repaired, dropped).
    assert "| train | `data/mock/train.json` | 120 | 119 | 119 | 0 | 2 | 1 |" in readme
    assert "| validation | `data/mock/dev.json` | 40 | 40 | 40 | 0 | 0 | 0 |" in readme
    # Hyperparameters and metrics, formatted.
    assert "| `learning_rate` | 0.0001 |" in readme
    assert "| `num_train_epochs` | 3 |" in readme and "`max_steps`" not in readme
    assert "| `max_seq_length` | 256 |" in readme and "| `doc_stride` | 64 |" in readme
    assert "| `train_loss` | 1.2346 |" in readme
    assert "| `eval_exact_match` | 72.50 |" in readme and "| `eval_f1` | 80.12 |" in readme
    assert "| `predict_f1` | 78.46 |" in readme
    assert "| `train_runtime` | 2 min 5 s |" in readme
    assert "`train_records`" not in readme  # data counts belong to the data table
    # Loading and answering.
    assert f'AutoModelForQuestionAnswering.from_pretrained("{out.as_posix()}")' in readme
    assert f'AutoTokenizer.from_pretrained("{out.as_posix()}")' in readme
    assert f'qa_predict.py --tuned_model {out.as_posix()} --context_file doc.txt --question "..."' in readme
    assert "--max_seq_length" not in readme.split("```bash")[1]  # qa_predict.py reads them from qa_settings.json
    assert "peft" not in readme and "--null_score_diff_threshold" not in readme

    summary = (out / "results.md").read_text(encoding="utf-8")
    assert (
        "Fine-tuned `models/all-MiniLM-L6-v2` on 119 training questions (131 windows) for 30 steps (3 epochs) "
        "in 2 min 5 s." in summary
    )
    assert "On `data/mock/dev.json` (40 questions) it reaches EM 72.50 / F1 80.12 (SQuAD v1.1 metrics)." in summary
    assert "On `data/mock/test.json` (40 questions) it reaches EM 70.00 / F1 78.46" in summary
    assert "best evaluation F1 during training was 90.00 at step 30" in summary
    assert "Data: 2 answer spans repaired, 1 record dropped (see `data_report.json`)." in summary


def test_v2_lora_with_merge(tmp_path):
    out = tmp_path / "run"
    report = data_report(v2=True)
    args = run_args(tmp_path, "--version_2_with_negative", "--use_lora", "--merge_lora", "--lora_r", "4")
    results = TRAIN_RESULTS | V2_EVAL | data_counts(report)
    write_run_report(out, args, report, results, log_history("eval_exact"))

    readme = (out / "README.md").read_text(encoding="utf-8")
    meta = front_matter(readme)
    assert meta["library_name"] == "peft"  # an adapter folder is a peft artefact on the Hub
    assert "lora" in meta["tags"] and "squad_v2" in meta["tags"]
    assert "SQuAD v2.0" in readme and "holds an adapter" in readme
    assert "from peft import AutoPeftModelForQuestionAnswering" in readme
    assert f'AutoPeftModelForQuestionAnswering.from_pretrained("{out.as_posix()}")' in readme
    assert f'AutoModelForQuestionAnswering.from_pretrained("{out.as_posix()}/merged")' in readme
    assert "| `lora_r` | 4 |" in readme
    assert "| train | `data/mock/train.json` | 120 | 119 | 89 | 30 | 2 | 1 |" in readme
    assert "| `eval_HasAns_f1` | 67.33 |" in readme and "| `eval_best_f1_thresh` | -1.5000 |" in readme
    assert "no-answer threshold (-1.5000, `eval_best_f1_thresh`" in readme and "qa_settings.json" in readme
    assert "--null_score_diff_threshold" not in readme.split("```bash")[1].split("```")[0]  # read from qa_settings.json

    summary = (out / "results.md").read_text(encoding="utf-8")
    assert summary.startswith("# Results")
    assert "Trained LoRA adapters for `models/all-MiniLM-L6-v2`" in summary
    assert "it reaches EM 65.00 / F1 70.50 (SQuAD v2.0 metrics, no-answer threshold 0.0000)" in summary
    assert "On answerable questions (30): EM 60.00 / F1 67.33." in summary
    assert "On unanswerable questions (10): EM 80.00 / F1 80.00." in summary
    assert "`--null_score_diff_threshold -1.5000`" in summary and "F1 72.25" in summary
    assert "test.json" not in summary  # no predict metrics: nothing claimed about the test file


def test_lora_without_merge_has_no_merged_folder(tmp_path):
    out = tmp_path / "run"
    write_run_report(out, run_args(tmp_path, "--use_lora"), data_report(), TRAIN_RESULTS, log_history())
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "AutoPeftModelForQuestionAnswering" in readme
    assert "merged" not in readme


def test_eval_only_run_states_no_training_numbers(tmp_path):
    out = tmp_path / "run"
    args = run_args(tmp_path)
    args["QATrainingArguments"]["do_train"] = False
    report = {k: v for k, v in data_report().items() if k != "train"}
    history = [{"step": 0, "eval_exact_match": 72.5, "eval_f1": 80.123}]
    written = write_run_report(out, args, report, V1_EVAL | data_counts(report), history)

    assert "training_curves.png" not in written  # one point is not a curve
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "not trained in this run" in readme
    assert "Training hyperparameters" not in readme and "train_loss" not in readme
    summary = (out / "results.md").read_text(encoding="utf-8")
    assert "No training in this run" in summary
    assert "EM 72.50 / F1 80.12" in summary
    assert "Fine-tuned" not in summary and "steps" not in summary


def test_unlabelled_test_file_is_not_scored(tmp_path):
    out = tmp_path / "run"
    results = {"predict_examples": 40, "predict_features": 43, "predict_runtime": 0.8}
    write_run_report(out, run_args(tmp_path), {"test": split_report("data/mock/test.json", 40)}, results, [])
    summary = (out / "results.md").read_text(encoding="utf-8")
    assert "`predict_predictions.json` (no gold answers, so no score)" in summary
    assert "EM" not in summary


def test_empty_inputs_still_write_the_card(tmp_path):
    written = write_run_report(tmp_path / "new" / "dir", {}, {}, {}, [])
    assert set(written) == {"README.md", "results.md"}
    readme = written["README.md"].read_text(encoding="utf-8")
    assert front_matter(readme)["base_model"] == "unknown"
    assert "AutoModelForQuestionAnswering.from_pretrained" in readme
    assert "This run produced no metrics." in written["results.md"].read_text(encoding="utf-8")


def test_awkward_paths_are_quoted(tmp_path):
    out = tmp_path / "my run #1"
    args = {"ModelArguments": {"model_name_or_path": "C:/models/base: v2"}}
    write_run_report(out, args, {}, {}, [])
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert front_matter(readme)["base_model"] == "C:/models/base: v2"
    assert f"--tuned_model '{out.as_posix()}'" in readme


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is optional (requirements-extra.txt)")
def test_training_curves_png(tmp_path):
    out = tmp_path / "run"
    written = write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS | V1_EVAL, log_history())
    png = written["training_curves.png"]
    assert png == out / "training_curves.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "](training_curves.png)" in (out / "README.md").read_text(encoding="utf-8")


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is optional (requirements-extra.txt)")
def test_curves_with_loss_only(tmp_path):
    history = [entry for entry in log_history() if "loss" in entry]
    written = write_run_report(tmp_path, run_args(tmp_path), {}, TRAIN_RESULTS, history)
    assert written["training_curves.png"].read_bytes()[:8] == PNG_MAGIC


def test_without_matplotlib_warns_and_writes_the_rest(tmp_path, monkeypatch, caplog):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="slmqa"):
        written = write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS | V1_EVAL, log_history())
    assert set(written) == {"README.md", "results.md"}
    assert not (out / "training_curves.png").exists()
    assert "training_curves.png" not in (out / "README.md").read_text(encoding="utf-8")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["matplotlib is not installed: pip install matplotlib to get training_curves.png."]


def test_readme_snippets_load_and_answer(tmp_path, tiny_model_dir, tokenizer, capsys):
    """The card's Python snippet runs as written, for a full model and for a LoRA adapter."""
    import re

    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForQuestionAnswering

    full = tmp_path / "full"
    shutil.copytree(tiny_model_dir, full)
    adapter = tmp_path / "adapter"
    base = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    lora = LoraConfig(
        task_type=TaskType.QUESTION_ANS, target_modules=["query", "value"], modules_to_save=["qa_outputs"]
    )
    get_peft_model(base, lora).save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)

    v2 = ("--version_2_with_negative", "--null_score_diff_threshold=-1e9")  # always "no answer"
    for out, extra in ((full, ()), (adapter, ("--use_lora",)), (full, v2)):
        write_run_report(out, run_args(tmp_path, *extra), {}, {}, [])
        readme = (out / "README.md").read_text(encoding="utf-8")
        snippet = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
        exec(compile(snippet, "README.md", "exec"), {})  # noqa: S102 - running the documented snippet is the test
        # The tiny model's head is random, but decoding as evaluation does, the answer is a
        # non-empty span of the context: never [CLS] or question tokens.
        answer = capsys.readouterr().out.removesuffix("\n")
        assert (answer == "") if extra == v2 else (answer and answer in "The torque setting is 40 Nm.")


def test_a_failing_plot_does_not_fail_the_report(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(curves, "draw", broken)
    with caplog.at_level(logging.WARNING, logger="slmqa"):
        written = write_run_report(tmp_path, run_args(tmp_path), {}, TRAIN_RESULTS, log_history())
    assert set(written) == {"README.md", "results.md"}
    assert "Could not draw training_curves.png." in caplog.text


def model_index(readme: str) -> list[tuple]:
    """(split, dataset name, metric type, value) of every model-index result."""
    (entry,) = front_matter(readme)["model-index"]
    return [
        (result["dataset"]["split"], result["dataset"]["name"], metric["type"], metric["value"])
        for result in entry["results"]
        for metric in result["metrics"]
    ]


def test_model_index_carries_every_scored_split_so_the_hub_shows_it(tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS | V1_EVAL | V1_PREDICT, log_history())
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert model_index(readme) == [
        ("validation", "data/mock/dev.json", "exact_match", 72.5), ("validation", "data/mock/dev.json", "f1", 80.123),
        ("test", "data/mock/test.json", "exact_match", 70.0), ("test", "data/mock/test.json", "f1", 78.456),
    ]
    card = ModelCard.load(out / "README.md")  # what the Hub parses
    assert {(r.dataset_split, r.metric_type) for r in card.data.eval_results} == {
        ("validation", "exact_match"), ("validation", "f1"), ("test", "exact_match"), ("test", "f1")}
    assert front_matter(readme)["model-index"][0]["name"] == "run"
    # v2 runs index their v2 scores; a run without scores has no model-index.
    write_run_report(out, run_args(tmp_path, "--version_2_with_negative"), data_report(v2=True), TRAIN_RESULTS | V2_EVAL,
                     log_history("eval_exact"))
    metrics = {(split, kind) for split, _, kind, _ in model_index((out / "README.md").read_text(encoding="utf-8"))}
    assert metrics == {("validation", "exact"), ("validation", "f1")}
    write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS, log_history())
    assert "model-index" not in front_matter((out / "README.md").read_text(encoding="utf-8"))


def test_licence_is_chosen_else_the_base_models_else_unknown(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\nlibrary_name: transformers\n---\n# base\n", encoding="utf-8")
    out = tmp_path / "run"
    for extra, expected in (([], "mit"), (["--license", "cc-by-sa-4.0"], "cc-by-sa-4.0")):
        write_run_report(out, run_args(tmp_path, "--model_name_or_path", str(base), *extra), {}, {}, [])
        assert front_matter((out / "README.md").read_text(encoding="utf-8"))["license"] == expected
    write_run_report(out, run_args(tmp_path, "--model_name_or_path", str(tmp_path / "no-card")), {}, {}, [])
    assert front_matter((out / "README.md").read_text(encoding="utf-8"))["license"] == "unknown"


def test_answer_confidence_section_only_with_a_calibration(tmp_path):
    from slmqa.decoding.calibration import risk_coverage
    from slmqa.settings import Calibration

    calibration = Calibration("platt", slope=0.4, intercept=-0.5, fitted_on=200, ece_before=0.3125, ece_after=0.0412,
                              selection="5-fold cross-validated log-loss on 200 validation answers: temperature 0.61, platt 0.58")
    rows = risk_coverage([0.9, 0.8, 0.4, 0.2], [True, True, False, False], [1.0, 0.8, 0.0, 0.3])
    out = tmp_path / "run"
    write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS | V1_EVAL, log_history(),
                     calibration={"calibration": calibration.to_json(), "risk_coverage": rows})
    readme = (out / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Answer confidence")[1].split("\n## ")[0]
    assert "platt scaling: slope 0.4, intercept -0.5; fitted on 200 validation answers" in section
    assert "**0.3125** uncalibrated, **0.0412** calibrated" in section and "`softmax_probability`" in section
    assert "Method chosen by 5-fold cross-validated log-loss" in section
    assert "| 0.500 | 2 | 50.0% | 90.00 | 100.0% |" in section and "| 0.900 | 1 | 25.0% | 100.00 | 100.0% |" in section

    write_run_report(out, run_args(tmp_path), data_report(), TRAIN_RESULTS | V1_EVAL, log_history())
    assert "## Answer confidence" not in (out / "README.md").read_text(encoding="utf-8")
