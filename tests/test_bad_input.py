"""Any dataset in, clear errors out, nothing lost: run_qa.py on every kind of defect."""

from __future__ import annotations

import json

from tests.helpers import common_args, make_record, run_qa, write_flat

EVERY_DEFECT = [
    make_record("good-1", "The fan runs at 300 rpm.", "How fast is the fan?", "300 rpm"),
    make_record("good-2", "The pump runs at 90 rpm.", "How fast is the pump?", "90 rpm"),
    {"id": "no-question", "context": "Text.", "answers": []},
    {"id": "number-context", "question": "Q?", "context": 42, "answers": []},
    {"id": "empty-context", "question": "Q?", "context": "  ", "answers": []},
    make_record("wrong-span", "The valve is red.", "Colour?", "blue", start=4),
    make_record("negative-start", "The valve is red.", "Colour?", "red", start=-5),
    make_record("good-1", "The fan runs at 300 rpm.", "How fast is the fan?", "300 rpm"),
    make_record("good-2", "Other text entirely.", "Other?", None),
    make_record("long-question", "The valve is red.", "word " * 60 + "?", "red"),
    {"id": "bad-answers", "question": "Q?", "context": "Text.", "answers": {"text": ["a", "b"], "answer_start": [0]}},
    make_record(None, "The belt is 2 m long.", "How long is the belt?", "2 m"),
]


def test_every_input_id_is_predicted_or_reported(tiny_model_dir, tmp_path):
    dev = write_flat(tmp_path / "dev.json", EVERY_DEFECT)
    out = tmp_path / "run"
    run_qa("--model_name_or_path", tiny_model_dir, "--validation_file", dev, "--do_eval", "--output_dir", out,
           "--max_seq_length", 64, "--doc_stride", 16, "--max_bad_fraction", 0.9, "--report_to", "none")
    predictions = json.loads((out / "eval_predictions.json").read_text())
    report = json.loads((out / "data_report.json").read_text())["validation"]
    dropped = report["dropped"]
    counts = report["counts"]
    assert counts["records"] == len(EVERY_DEFECT) == counts["kept"] + counts["dropped_records"]
    assert counts["kept"] == counts["answerable"] + counts["unanswerable"]
    assert len(predictions) == counts["kept"] == 5  # 2 good, wrong-span, negative-start (kept for scoring), generated id
    assert sorted(d["index"] for d in dropped) == [2, 3, 4, 7, 8, 9, 10]
    reasons = {d["index"]: (d["field"], d["reason"]) for d in dropped}
    assert reasons[2] == ("question", "missing")
    assert reasons[3] == ("context", "expected a string, got int")
    assert reasons[4] == ("context", "empty")
    assert reasons[7] == ("id", "duplicate id (identical record)")
    assert reasons[8] == ("id", "duplicate id with different content")
    assert reasons[9][0] == "question" and "tokens" in reasons[9][1]
    assert reasons[10][0] == "answers"
    assert {"wrong-span", "negative-start"} == {d["id"] for d in report["unlocated"]}
    assert any(pid.startswith("gen-") for pid in predictions)


def test_run_level_errors_are_clear(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_seq_length", 1024, expect=2)
    assert "max_seq_length=1024 exceeds the model's limit of 512" in output

    not_qa = tmp_path / "not-qa"
    not_qa.mkdir()
    (not_qa / "config.json").write_text(json.dumps({"model_type": "clip"}), encoding="utf-8")
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--model_name_or_path", not_qa,
                    "--tokenizer_name", tiny_model_dir, expect=2)
    assert "no question-answering model class" in output and "Traceback" not in output

    missing = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--train_file", tmp_path / "nope.json", expect=2)
    assert "Data file not found" in missing and "nope.json" in missing


def test_unanswerable_without_v2_warns(tiny_model_dir, tmp_path):
    records = [make_record("a", "Alpha beta.", "Q?", "beta"), make_record("b", "Alpha.", "Q?", None, is_impossible=True)]
    dev = write_flat(tmp_path / "dev.json", records)
    output = run_qa("--model_name_or_path", tiny_model_dir, "--validation_file", dev, "--do_eval",
                    "--output_dir", tmp_path / "run", "--max_seq_length", 64, "--doc_stride", 16, "--report_to", "none")
    assert "1 unanswerable questions but --version_2_with_negative is off" in output


UNICODE_CONTEXT = (
    "Café crème costs 3,50 €.\r\nThe naïve façade (façade) is 12 m tall. "
    "東京の会議室は 5 階です。 Rocket 🚀 launch at T+10 s. "
    "Zero\u200bwidth here. Combining e\u0301 mark done."
)


def test_unicode_predictions_are_exact_substrings(tiny_model_dir, tmp_path):
    questions = ["What costs 3,50?", "Where is the room?", "When is launch?", "What is here?"]
    records = [make_record(f"u{i}", UNICODE_CONTEXT, q, None) for i, q in enumerate(questions)]
    dev = write_flat(tmp_path / "dev.json", records)
    out = tmp_path / "run"
    run_qa("--model_name_or_path", tiny_model_dir, "--validation_file", dev, "--do_eval", "--output_dir", out,
           "--max_seq_length", 48, "--doc_stride", 16, "--report_to", "none")
    predictions = json.loads((out / "eval_predictions.json").read_text(encoding="utf-8"))
    assert len(predictions) == 4
    assert all(p and p in UNICODE_CONTEXT for p in predictions.values())
