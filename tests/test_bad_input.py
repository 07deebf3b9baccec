"""Any dataset in, clear errors out, nothing lost."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from args import DataTrainingArguments
from conftest import make_record, minilm_path, write_flat
from preprocess import DataError, Preprocess, main as check_main
from test_run_qa import common_args, run_qa


def args(**overrides) -> DataTrainingArguments:
    return DataTrainingArguments(**{"train_file": "unused.json", "max_seq_length": 64, "doc_stride": 16, **overrides})


def test_column_mapping_and_separate_start_column(tmp_path, tokenizer):
    path = tmp_path / "faq.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["qid", "passage", "query", "reply", "reply_start"])
        writer.writerow(["1", "Refunds take 14 days.", "How long do refunds take?", "14 days", "13"])
        writer.writerow(["2", "Support opens at 9 am.", "When does support open?", "9 am", "17"])
    mapped = args(train_file=str(path), id_column="qid", context_column="passage", question_column="query",
                  answer_column="reply", answer_start_column="reply_start")
    ds = Preprocess(mapped, tokenizer).load(["train"])["train"]
    assert list(ds["id"]) == ["1", "2"]
    assert [a["answer_start"] for a in ds["answers"]] == [[13], [17]]

    unmapped = args(train_file=str(path))
    with pytest.raises(DataError, match="field 'question': missing"):
        Preprocess(unmapped, tokenizer).load(["train"])


def test_text_only_answers_are_located_and_ambiguity_counted(tmp_path, tokenizer):
    records = [
        {"id": "a", "context": "Call 555 or 555 again.", "question": "Which number?", "answers": "555"},
        {"id": "b", "context": "The code is X9.", "question": "Which code?", "answers": ["X9"]},
        {"id": "c", "context": "Nothing here.", "question": "Which code?", "answers": "Z1"},
    ]
    pre = Preprocess(args(train_file=str(write_flat(tmp_path / "t.json", records)), max_bad_fraction=0.5), tokenizer)
    ds = pre.load(["train"])["train"]
    report = pre.reports["train"]
    assert list(ds["id"]) == ["a", "b"] and ds[0]["answers"]["answer_start"] == [5]
    assert report.ambiguous_spans == 1 and report.located_spans == 1
    assert [(d.id, d.field) for d in report.dropped] == [("c", "answers.text")]


def test_strict_makes_any_defect_fatal(tmp_path, tokenizer):
    records = [make_record(f"r{i}", "Alpha beta.", "Q?", "beta") for i in range(200)]
    records.append(make_record("bad", "Alpha beta.", "Q?", "gamma", start=0))
    path = write_flat(tmp_path / "t.json", records)
    assert len(Preprocess(args(train_file=str(path)), tokenizer).load(["train"])["train"]) == 200  # 1 of 201 < 1%
    with pytest.raises(DataError, match="'bad'"):
        Preprocess(args(train_file=str(path), strict=True), tokenizer).load(["train"])


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


@pytest.mark.parametrize("answer", ["3,50 €", "façade", "東京", "5 階", "T+10 s", "Combining e\u0301 mark"])
def test_unicode_answers_round_trip(tmp_path, tokenizer, answer):
    records = [make_record("u", UNICODE_CONTEXT, "Which?", answer)]
    pre = Preprocess(args(train_file=str(write_flat(tmp_path / "t.json", records)), max_seq_length=128, doc_stride=32), tokenizer)
    examples = pre.load(["train"])["train"]
    feature = pre.train_features(examples)[0]
    encoded = pre.windows.encode(list(examples["question"]), list(examples["context"]))
    offsets = encoded["offset_mapping"][0]
    decoded = UNICODE_CONTEXT[offsets[feature["start_positions"]][0] : offsets[feature["end_positions"]][1]]
    assert decoded == answer


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


WORDS = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Lo")), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(WORDS, min_size=3, max_size=120), data=st.data())
def test_labels_decode_back_for_random_spans(tmp_path_factory, words, data):
    tokenizer = _tokenizer()
    first = data.draw(st.integers(0, len(words) - 1))
    last = data.draw(st.integers(first, min(first + 4, len(words) - 1)))
    context = " ".join(words)
    start = len(" ".join(words[:first])) + (1 if first else 0)
    answer = " ".join(words[first : last + 1])
    assert context[start : start + len(answer)] == answer
    path = write_flat(tmp_path_factory.mktemp("h") / "t.json", [make_record("h", context, "Which words?", answer, start=start)])
    pre = Preprocess(args(train_file=str(path), max_seq_length=48, doc_stride=12), tokenizer)
    examples = pre.load(["train"])["train"]
    features = pre.train_features(examples)
    encoded = pre.windows.encode(list(examples["question"]), list(examples["context"]))
    labelled = 0
    for window, feature in enumerate(features):
        offsets = encoded["offset_mapping"][window]
        s, e = feature["start_positions"], feature["end_positions"]
        if s == 0 and e == 0:
            continue
        labelled += 1
        decoded = context[offsets[s][0] : offsets[e][1]]
        # Tokenizers drop characters they cannot represent (control/unknown); the span still
        # starts and ends inside the answer.
        assert start <= offsets[s][0] and offsets[e][1] <= start + len(answer)
        assert decoded.strip() and decoded in answer
    # A span no longer than doc_stride lies wholly inside some window (windows overlap by
    # doc_stride tokens), so at least one window must label it.
    if len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 12:
        assert labelled >= 1
    eval_features = pre.eval_features(examples)
    for feature in eval_features:
        for a, b in feature["offset_mapping"]:
            assert (a, b) == (-1, -1) or 0 <= a <= b <= len(context)


_TOKENIZER = None


def _tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        _TOKENIZER = AutoTokenizer.from_pretrained(str(minilm_path()))
    return _TOKENIZER


def test_check_entry_point_reports_without_training(tmp_path, capsys):
    records = [make_record("a", "Alpha beta.", "Q?", "beta", start=3), make_record("a", "Gamma.", "Q?", None)]
    path = write_flat(tmp_path / "t.json", records)
    report = tmp_path / "report.json"
    code = check_main(["--check", str(path), "--tokenizer", str(minilm_path()), "--max_bad_fraction", "0.5",
                       "--output_file", str(report)])
    assert code == 0
    result = json.loads(report.read_text())[str(path)]
    assert result["counts"]["repaired_spans"] == 1 and result["duplicate_ids"] == 1
    assert "repaired_spans" in capsys.readouterr().out
    assert check_main(["--check", str(path), "--tokenizer", str(minilm_path())]) == 2
