"""qa_predict.py: base vs tuned side by side, adapters, no-answer output."""

from __future__ import annotations

import io
import json

import pytest
import torch

import qa_predict
from conftest import make_record, write_flat


@pytest.fixture
def labeled_file(tmp_path):
    records = []
    for i in range(6):
        context = f"The pump P-{i} runs at {100 + i} rpm. The fan F-{i} runs at {200 + i} rpm."
        records.append(make_record(f"q{i}", context, f"How fast does pump P-{i} run?", f"{100 + i} rpm"))
    records.append(make_record("none", "The valve is blue.", "Who made the valve?", None, is_impossible=True))
    return write_flat(tmp_path / "test.json", records)


@pytest.fixture
def silent_model_dir(tmp_path, tiny_model_dir):
    """A tiny model whose QA head outputs all-zero logits: every span ties with 'no answer'."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
    directory = tmp_path / "silent"
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


def test_compare_writes_report_for_both_models(tiny_model_dir, labeled_file, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--base_model", str(tiny_model_dir), "--tuned_model", str(tiny_model_dir),
                            "--data_file", str(labeled_file), "--output_file", str(report_path), "--max_seq_length", "64",
                            "--doc_stride", "16", "--batch_size", "3"])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert set(report["models"]) == {"base", "tuned"}
    for model in report["models"].values():
        assert {"exact_match", "f1"} <= set(model["metrics"])
    assert len(report["predictions"]) == 7 and all(set(p) == {"base", "tuned"} for p in report["predictions"].values())
    # Same weights and seed: identical answers, so identical metrics.
    assert report["models"]["base"]["metrics"] == report["models"]["tuned"]["metrics"]
    printed = capsys.readouterr().out
    assert "question" in printed and "gold" in printed and "How fast does pump P-0 run?" in printed


def test_no_answer_is_shown_and_scored_in_v2(silent_model_dir, labeled_file, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    qa_predict.main(["--tuned_model", str(silent_model_dir), "--data_file", str(labeled_file), "--version_2_with_negative",
                     "--null_score_diff_threshold", "-1", "--output_file", str(report_path), "--max_seq_length", "64",
                     "--doc_stride", "16"])
    report = json.loads(report_path.read_text())
    assert all(p["tuned"] == "" for p in report["predictions"].values())
    metrics = report["models"]["tuned"]["metrics"]
    assert metrics["NoAns_exact"] == 100.0 and metrics["HasAns_exact"] == 0.0 and metrics["NoAns_total"] == 1
    assert qa_predict.NO_ANSWER in capsys.readouterr().out


def test_lora_adapter_directory_loads_as_tuned_model(tiny_model_dir, labeled_file, tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    base = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(task_type=TaskType.QUESTION_ANS, r=2, target_modules=["query", "value"]))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(adapter_dir)
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--tuned_model", str(adapter_dir), "--data_file", str(labeled_file),
                            "--output_file", str(report_path), "--max_seq_length", "64", "--doc_stride", "16"])
    assert code == 0
    assert len(json.loads(report_path.read_text())["predictions"]) == 7


def test_ad_hoc_question_and_interactive(tiny_model_dir, tmp_path, capsys):
    context_file = tmp_path / "doc.txt"
    context_file.write_text("The boiler B-7 must be inspected every 30 days by a licensed engineer.", encoding="utf-8")
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--tuned_model", str(tiny_model_dir), "--context_file", str(context_file),
                            "--question", "How often is B-7 inspected?", "--question", "Who inspects it?",
                            "--output_file", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    answers = [p["tuned"] for p in report["predictions"].values()]
    assert len(answers) == 2 and all(a in context_file.read_text() for a in answers)
    assert report["models"]["tuned"]["metrics"] == {}

    args = qa_predict.build_parser().parse_args(["--tuned_model", str(tiny_model_dir), "--context_file", str(context_file)])
    capsys.readouterr()
    qa_predict.interactive(args, stdin=io.StringIO("Who inspects it?\n\n"))
    assert "tuned:" in capsys.readouterr().out


def test_missing_inputs_are_clear_errors(tiny_model_dir, caplog):
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir)]) == 2
    assert "--data_file" in caplog.text
    assert qa_predict.main(["--data_file", "x.json"]) == 2
    assert "--base_model and/or --tuned_model" in caplog.text
