"""Stage 1 (preprocess.py): Preprocess reads, checks and windows each split; --check reports without training."""

from __future__ import annotations

import json
import logging

import pytest

from args import DataTrainingArguments
from preprocess import Preprocess
from preprocess import main as check_main
from slmqa.errors import ConfigError, DataError
from slmqa.mock.generate import generate_dataset, write_dataset
from tests.data.test_windows import _windowed_records
from tests.helpers import make_record, minilm_path, write_flat


def data_args(**overrides) -> DataTrainingArguments:
    values = {"train_file": "unused.json", "max_seq_length": 64, "doc_stride": 16}
    values.update(overrides)
    return DataTrainingArguments(**values)


def _keep_features(tokenizer, tmp_path, records, probability: float, seed: int = 42):
    path = write_flat(tmp_path / "train.json", records)
    args = data_args(train_file=str(path), version_2_with_negative=True, keep_answerless_windows=probability)
    pre = Preprocess(args, tokenizer, seed=seed)
    examples = pre.load(["train"])["train"]
    return pre.train_features(examples), pre



def test_slow_tokenizer_is_refused():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(DataError, match="not a fast tokenizer"):
        Preprocess(data_args(), SlowTokenizer())


@pytest.mark.parametrize("probability", [0.0, -0.5, 1.5])
def test_invalid_keep_answerless_windows_is_a_config_error(probability):
    with pytest.raises(ConfigError, match=r"keep_answerless_windows must be within \(0, 1\]"):
        data_args(keep_answerless_windows=probability)


def test_check_shows_what_keep_answerless_windows_leaves(tmp_path, capsys):
    path = write_flat(tmp_path / "train.json", _windowed_records())
    report = tmp_path / "report.json"
    common = ["--check", str(path), "--tokenizer", str(minilm_path()), "--max_seq_length", "64", "--doc_stride", "16",
              "--version_2_with_negative", "--output_file", str(report)]  # fmt: skip
    assert check_main(common) == 0
    everything = json.loads(report.read_text())[str(path)]["counts"]
    assert check_main(common + ["--keep_answerless_windows", "0.1"]) == 0
    thinned = json.loads(report.read_text())[str(path)]["counts"]
    assert everything["windows_kept"] == everything["windows"] == thinned["windows"] > thinned["windows_kept"]
    assert thinned["answer_windows"] == everything["answer_windows"]
    assert f"windows_kept                 {thinned['windows_kept']}" in capsys.readouterr().out
    # Every window kept, few of them hold an answer: --check advises subsampling; thinned, it does not.
    assert everything["answer_windows"] / everything["windows_kept"] < 0.2
    assert thinned["answer_windows"] / thinned["windows_kept"] >= 0.2
    check_main(common)
    (advice,) = json.loads(report.read_text())[str(path)]["warnings"]
    assert f"only {everything['answer_windows']} of {everything['windows_kept']} training windows" in advice
    assert "--keep_answerless_windows 0.1" in advice
    check_main(common + ["--keep_answerless_windows", "0.1"])
    assert json.loads(report.read_text())[str(path)]["warnings"] == []


def test_training_warns_when_few_windows_hold_answers(tokenizer, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="slmqa"):
        _keep_features(tokenizer, tmp_path, _windowed_records(), 1.0)
    assert any("training windows" in r.message and "--keep_answerless_windows 0.1" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="slmqa"):
        _keep_features(tokenizer, tmp_path, _windowed_records(), 0.1)
    assert not any("--keep_answerless_windows" in r.message for r in caplog.records)


KNOWN_LENGTHS = [2] * 95 + [10] * 4 + [40]  # 99th percentile (linear) = 10 + 0.01 * 30 = 10.3 -> 11


def _length_records() -> list[dict]:
    records = []
    for i, length in enumerate(KNOWN_LENGTHS):
        answer = " ".join(["red"] * length)
        context = f"Valve {i} is painted {answer} today."
        records.append(make_record(f"r{i}", context, f"Which colour has valve {i}?", answer))
    return records


def test_preprocess_resolves_max_answer_length_auto_from_the_labelled_spans(tokenizer, tmp_path):
    path = write_flat(tmp_path / "train.json", _length_records())
    pre = Preprocess(data_args(train_file=str(path), max_seq_length=128, doc_stride=32), tokenizer)
    examples = pre.load(["train"])["train"]
    lengths = pre.answer_lengths(examples)
    assert lengths.tolist() == KNOWN_LENGTHS
    features = pre.train_features(examples)  # one window per record here
    assert [e - s + 1 for s, e in zip(features["start_positions"], features["end_positions"])] == KNOWN_LENGTHS
    assert pre.auto_max_answer_length(examples) == 11


def test_max_answer_length_auto_needs_training_data_and_answers(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="max_answer_length auto .* pass a number"):
        DataTrainingArguments(validation_file="dev.json", max_answer_length="auto")
    with pytest.raises(ConfigError, match="whole number of tokens or 'auto'"):
        data_args(max_answer_length="long")
    assert data_args(max_answer_length="auto").max_answer_length == "auto"
    assert data_args(max_answer_length="50").max_answer_length == 50 == data_args(max_answer_length=50).max_answer_length
    path = write_flat(tmp_path / "train.json", [make_record("u", "Alpha.", "Q?", None, is_impossible=True)])
    pre = Preprocess(data_args(train_file=str(path), max_answer_length="auto"), tokenizer)
    with pytest.raises(DataError, match="train.json: max_answer_length auto needs answerable training questions"):
        pre.load(["train"])
    path = write_flat(tmp_path / "train.json", _length_records())
    args = data_args(train_file=str(path), max_seq_length=128, doc_stride=32, max_answer_length="auto")
    pre = Preprocess(args, tokenizer)
    pre.load(["train"])
    assert pre.settings.max_answer_length == args.max_answer_length == 11  # what decoding will use
    pre = Preprocess(data_args(validation_file=str(path), max_answer_length="auto"), tokenizer)
    with pytest.raises(ConfigError, match="this run does not train"):
        pre.load(["validation"])


def test_check_reports_answer_lengths_and_warns_when_max_answer_length_cuts(tmp_path, capsys, caplog):
    path = write_flat(tmp_path / "train.json", _length_records())
    report = tmp_path / "report.json"
    common = ["--check", str(path), "--tokenizer", str(minilm_path()), "--max_seq_length", "128", "--doc_stride", "32",
              "--output_file", str(report)]  # fmt: skip
    assert check_main(common + ["--max_answer_length", "5"]) == 0
    result = json.loads(report.read_text())[str(path)]
    tokens = result["answer_tokens"]
    assert (tokens["answers"], tokens["min"], tokens["median"], tokens["max"]) == (100, 2, 2.0, 40)
    assert tokens["p99"] == pytest.approx(10.3) and tokens["cut"] == 5 and tokens["cut_fraction"] == 0.05
    assert len(result["warnings"]) == 1 and "would cut 5 of 100 training answers (5.0%" in result["warnings"][0]
    assert "the 99th percentile is 11 tokens" in caplog.text
    out = capsys.readouterr().out
    assert "min 2, median 2, p90 2, p95 2.4, p99 10.3, max 40 (100 answers)" in out and "cuts 5 answers (5.00%)" in out
    assert check_main(common + ["--max_answer_length", "auto"]) == 0  # 11 cuts only the 40: exactly 1%, no warning
    result = json.loads(report.read_text())[str(path)]
    assert result["answer_tokens"]["max_answer_length"] == 11 and result["answer_tokens"]["cut"] == 1
    assert result["warnings"] == []


def test_check_entry_point_reports_without_training(tmp_path, capsys):
    records = [make_record("a", "Alpha beta.", "Q?", "beta", start=3), make_record("a", "Gamma.", "Q?", None)]
    path = write_flat(tmp_path / "t.json", records)
    report = tmp_path / "report.json"
    code = check_main(["--check", str(path), "--tokenizer", str(minilm_path()), "--max_bad_fraction", "0.5",
                       "--output_file", str(report)])
    assert code == 0
    result = json.loads(report.read_text())[str(path)]
    assert result["counts"]["repaired_spans"] == 1 and result["duplicate_ids"] == 1
    assert result["repaired"] == ["record 0 (id 'a'), field 'answers.answer_start': 3 -> 6"]
    printed = capsys.readouterr().out
    assert "repaired_spans" in printed and "repaired record 0 (id 'a'), field 'answers.answer_start': 3 -> 6" in printed
    assert check_main(["--check", str(path), "--tokenizer", str(minilm_path())]) == 2


@pytest.mark.parametrize("fmt", ["json", "jsonl", "squad"])
def test_every_mock_format_loads_through_the_pipeline(fmt, tmp_path, tokenizer):
    splits = generate_dataset("clinical_trial", {"train": 40, "validation": 10}, seed=3, impossible_ratio=0.3)
    paths = write_dataset(splits, tmp_path, fmt=fmt)
    args = DataTrainingArguments(train_file=str(paths["train"]), validation_file=str(paths["validation"]),
                                 version_2_with_negative=True, max_bad_fraction=0.0)
    loaded = Preprocess(args, tokenizer).load(["train", "validation"])
    for split, records in splits.items():
        assert list(loaded[split]["id"]) == [r["id"] for r in records]
        assert [a["answer_start"] for a in loaded[split]["answers"]] == [r["answers"]["answer_start"] for r in records]


def test_check_takes_the_column_mapping_and_its_counts_add_up(tmp_path, capsys):
    """--check reads data with its own column names, names records by their mapped ids, and sums its counts."""
    rows = [{"qid": f"q{i}", "query": f"Which code has unit {i}?", "passage": f"Unit {i} has code C{i}.",
             "reply": {"text": [f"C{i}"], "answer_start": [len(f"Unit {i} has code ")]}} for i in range(9)]
    rows += [{"qid": f"bad{i}", "query": "", "passage": "Text.", "reply": []} for i in range(3)]
    path = write_flat(tmp_path / "mapped.json", rows)
    report = tmp_path / "report.json"
    mapping = ["--id_column", "qid", "--question_column", "query", "--context_column", "passage", "--answer_column", "reply"]
    assert check_main(["--check", str(path), "--tokenizer", str(minilm_path()), *mapping, "--output_file", str(report)]) == 2
    result = json.loads(report.read_text())[str(path)]
    counts = result["counts"]
    assert (counts["records"], counts["kept"], counts["dropped_records"]) == (12, 9, 3)
    assert counts["records"] == counts["kept"] + counts["dropped_records"] + counts["skipped_by_max_samples"]
    assert result["dropped"][0] == "record 9 (id 'bad0'), field 'query': empty"
    printed = capsys.readouterr().out
    assert "UNUSABLE" in printed and "id 'bad0'" in printed and "'None'" not in printed
    assert check_main(["--check", str(path), "--tokenizer", str(minilm_path()), *mapping, "--max_bad_fraction", "0.5",
                       "--output_file", str(report)]) == 0
    assert json.loads(report.read_text())[str(path)]["windows"] == 9


def test_preprocess_maps_columns_for_every_split(tokenizer, tmp_path):
    rows = [{"qid": "a", "query": "Which code?", "passage": "The code is C1.", "reply": "C1"}]
    path = write_flat(tmp_path / "mapped.json", rows)
    args = data_args(train_file=str(path), validation_file=str(path), id_column="qid", question_column="query",
                     context_column="passage", answer_column="reply")
    examples = Preprocess(args, tokenizer).load(["train", "validation"])
    assert [list(examples[split]["id"]) for split in ("train", "validation")] == [["a"], ["a"]]
    assert examples["train"][0]["answers"] == {"text": ["C1"], "answer_start": [12]}
