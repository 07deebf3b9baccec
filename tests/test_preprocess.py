"""Stage 1: reading, checking, repairing and windowing."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from args import DataTrainingArguments
from conftest import make_record, write_flat
from data_check import locate_span, normalize_answers
from data_files import DataError, read_records
from preprocess import Preprocess
from windows import label_span

LONG_CONTEXT = " ".join(f"Sentence number {i} mentions the filter code F{i:03d} for unit {i}." for i in range(60))


def data_args(**overrides) -> DataTrainingArguments:
    values = {"train_file": "unused.json", "max_seq_length": 64, "doc_stride": 16}
    values.update(overrides)
    return DataTrainingArguments(**values)


# ---------------------------------------------------------------- reading


def test_all_file_layouts_read_to_the_same_records(tmp_path):
    records = [
        make_record("a", "Alpha beta gamma.", "Which letter?", "beta"),
        make_record("b", "Delta epsilon.", "Which one?", None, is_impossible=True),
    ]
    write_flat(tmp_path / "flat.json", records)
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    nested = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {"context": "Alpha beta gamma.", "qas": [{"id": "a", "question": "Which letter?", "answers": [{"text": "beta", "answer_start": 6}]}]},
                    {"context": "Delta epsilon.", "qas": [{"id": "b", "question": "Which one?", "answers": [], "is_impossible": True}]},
                ],
            }
        ],
    }
    (tmp_path / "nested.json").write_text(json.dumps(nested), encoding="utf-8")
    with open(tmp_path / "table.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "title", "context", "question", "answers", "is_impossible"])
        writer.writeheader()
        for r in records:
            writer.writerow({**r, "answers": json.dumps(r["answers"]), "is_impossible": r.get("is_impossible", False)})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "table.parquet")

    tok = _tokenizer()
    results = []
    for name in ("flat.json", "lines.jsonl", "nested.json", "table.csv", "table.parquet"):
        pre = Preprocess(data_args(train_file=str(tmp_path / name), version_2_with_negative=True), tok)
        ds = pre.load(["train"])["train"]
        results.append([(r["id"], r["question"], r["answers"]["text"], r["answers"]["answer_start"]) for r in ds])
    assert all(r == results[0] for r in results), results
    assert results[0] == [("a", "Which letter?", ["beta"], [6]), ("b", "Which one?", [], [])]


def _tokenizer():
    from conftest import minilm_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "invalid JSON at line 1"),
        ('{"nodata": []}', "'data' list"),
        ("", "invalid JSON"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        read_records(path)
    assert "bad.json" in str(err.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_records(tmp_path / "nope.json")
    (tmp_path / "data.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported extension '.txt'"):
        read_records(tmp_path / "data.txt")


def test_answer_layouts_are_normalized():
    expected = [("beta", 6)]
    assert normalize_answers({"text": ["beta"], "answer_start": [6]}) == expected
    assert normalize_answers({"text": "beta", "answer_start": 6}) == expected
    assert normalize_answers([{"text": "beta", "answer_start": "6"}]) == expected
    assert normalize_answers('{"text": ["beta"], "answer_start": [6]}') == expected
    assert normalize_answers("beta") == [("beta", None)]
    assert normalize_answers(None) == [] and normalize_answers([]) == []


# ---------------------------------------------------------------- span checks


def test_locate_span_exact_repaired_and_failures():
    context = "The valve opens at 5 bar; the pump stops at 5 bar."
    assert locate_span(context, "5 bar", 19) == (19, "exact")
    assert locate_span(context, "5 bar", 16) == (19, "repaired")  # off by three
    assert locate_span(context, "5 bar", 42) == (44, "repaired")  # nearest of two occurrences
    assert locate_span(context, "5 bar", None) == (19, "ambiguous")
    assert locate_span(context, "valve", None) == (4, "located")
    assert locate_span(context, "7 bar", 19)[0] is None
    assert locate_span(context, "5 bar", 500)[0] is None
    assert locate_span(context, "5 bar", -3)[0] is None


def test_defects_are_reported_and_rare_ones_dropped(tmp_path):
    context = "The valve opens at 5 bar and closes at 2 bar."
    records = [make_record(f"ok-{i}", context, f"Question {i}?", "5 bar") for i in range(8)]
    records.append(make_record("shifted", context, "Closing pressure?", "2 bar", start=context.index("2 bar") - 2))
    records.append(make_record("absent", context, "Opening?", "9 bar", start=3))
    path = write_flat(tmp_path / "train.json", records)

    with pytest.raises(DataError) as err:  # 1 of 10 unusable > 1%
        Preprocess(data_args(train_file=str(path)), _tokenizer()).load(["train"])
    message = str(err.value)
    assert "train.json" in message and "record 9" in message and "'absent'" in message and "answers.answer_start" in message

    pre = Preprocess(data_args(train_file=str(path), max_bad_fraction=0.2), _tokenizer())
    ds = pre.load(["train"])["train"]
    report = pre.reports["train"]
    assert len(ds) == 9 and "absent" not in ds["id"]
    assert report.repaired_spans == 1 and report.repaired_ids == ["shifted"]
    assert [d.id for d in report.dropped] == ["absent"]
    shifted = ds[list(ds["id"]).index("shifted")]
    assert shifted["answers"]["answer_start"] == [context.index("2 bar")]


def test_evaluation_records_with_unlocatable_spans_are_kept(tmp_path):
    context = "The valve opens at 5 bar."
    path = write_flat(tmp_path / "dev.json", [make_record("x", context, "Q?", "7 bar", start=3)])
    pre = Preprocess(data_args(validation_file=str(path)), _tokenizer())
    ds = pre.load(["validation"])["validation"]
    assert ds["id"] == ["x"] and ds[0]["answers"]["text"] == ["7 bar"]
    assert [d.id for d in pre.reports["validation"].unlocated] == ["x"]


@pytest.mark.parametrize(
    "record, field",
    [
        ({"id": "a", "context": "c", "answers": []}, "question"),
        ({"id": "a", "question": "q?", "context": 5, "answers": []}, "context"),
        ({"id": "a", "question": "q?", "context": "   ", "answers": []}, "context"),
        ({"id": "a", "question": "  ", "context": "c", "answers": []}, "question"),
    ],
)
def test_record_level_field_errors_name_the_field(tmp_path, record, field):
    path = write_flat(tmp_path / "train.json", [record])
    with pytest.raises(DataError, match=f"field '{field}'"):
        Preprocess(data_args(train_file=str(path)), _tokenizer()).load(["train"])


def test_questions_are_stripped_and_missing_ids_generated_stably(tmp_path):
    record = make_record(None, "Alpha beta.", "   Which?  ", "beta")
    path = write_flat(tmp_path / "train.json", [record])
    first = Preprocess(data_args(train_file=str(path)), _tokenizer()).load(["train"])["train"][0]
    second = Preprocess(data_args(train_file=str(path)), _tokenizer()).load(["train"])["train"][0]
    assert first["question"] == "Which?"
    assert first["id"] == second["id"] and first["id"].startswith("gen-")


def test_slow_tokenizer_is_refused():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(DataError, match="not a fast tokenizer"):
        Preprocess(data_args(), SlowTokenizer())


# ---------------------------------------------------------------- windows and labels


def _train_features(tmp_path, records, **overrides):
    path = write_flat(tmp_path / "train.json", records)
    pre = Preprocess(data_args(train_file=str(path), version_2_with_negative=True, **overrides), _tokenizer())
    examples = pre.load(["train"])["train"]
    return examples, pre.train_features(examples), pre


def test_labels_decode_back_to_the_answer_across_windows(tmp_path):
    answers = ["Sentence number 0", "F031", "unit 59."]  # start, middle (window overlap), end
    records = [make_record(f"r{i}", LONG_CONTEXT, "Which code?", a) for i, a in enumerate(answers)]
    examples, features, pre = _train_features(tmp_path, records)
    encoded = pre.windows.encode(list(examples["question"]), list(examples["context"]))
    windows_per_example = {}
    for window, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        windows_per_example.setdefault(sample, []).append(window)
    assert all(len(w) > 3 for w in windows_per_example.values())  # the context really is windowed
    for sample, windows in windows_per_example.items():
        answer = answers[sample]
        hits = 0
        for window in windows:
            start, end = features[window]["start_positions"], features[window]["end_positions"]
            if start == 0:
                assert end == 0
                continue
            offsets = encoded["offset_mapping"][window]
            assert LONG_CONTEXT[offsets[start][0] : offsets[end][1]] == answer
            hits += 1
        assert hits >= 1, f"answer {answer!r} labelled in no window"


def test_unanswerable_and_out_of_window_go_to_cls(tmp_path):
    records = [
        make_record("none", LONG_CONTEXT, "Which code?", None, is_impossible=True),
        make_record("late", LONG_CONTEXT, "Which code?", "F059"),
    ]
    examples, features, pre = _train_features(tmp_path, records)
    samples = pre.windows.encode(list(examples["question"]), list(examples["context"]))["overflow_to_sample_mapping"]
    none_windows = [f for f, s in zip(features, samples) if s == 0]
    late_windows = [f for f, s in zip(features, samples) if s == 1]
    assert all(f["start_positions"] == 0 and f["end_positions"] == 0 for f in none_windows)
    cls_windows = [f for f in late_windows if f["start_positions"] == 0]
    assert len(cls_windows) == len(late_windows) - 1  # only the last window holds F059


def test_label_span_is_cls_when_answer_crosses_the_window_edge():
    offsets = [(0, 0), (0, 3), (0, 0), (0, 4), (5, 9), (0, 0)]
    sequence_ids = [None, 0, None, 1, 1, None]
    assert label_span(offsets, sequence_ids, 1, 5, 9, 0) == (4, 4)
    assert label_span(offsets, sequence_ids, 1, 0, 9, 0) == (3, 4)
    assert label_span(offsets, sequence_ids, 1, 5, 12, 0) == (0, 0)  # runs past the window


def test_eval_features_mask_non_context_offsets_and_cover_every_example(tmp_path):
    records = [make_record(f"r{i}", LONG_CONTEXT if i % 2 else "Short context here.", "Which?", None) for i in range(5)]
    path = write_flat(tmp_path / "dev.json", records)
    pre = Preprocess(data_args(validation_file=str(path), version_2_with_negative=True), _tokenizer())
    examples = pre.load(["validation"])["validation"]
    features = pre.eval_features(examples)
    assert set(features["example_id"]) == set(examples["id"])
    for feature in features:
        tokens = feature["input_ids"]
        sep = tokens.index(_tokenizer().sep_token_id)
        assert feature["cls_index"] == 0
        assert all(o == [-1, -1] for o in feature["offset_mapping"][: sep + 1])  # CLS + question + SEP
        assert feature["offset_mapping"][-1] == [-1, -1]  # final SEP
        context_offsets = [o for o in feature["offset_mapping"] if o != [-1, -1]]
        assert context_offsets and all(0 <= a <= b for a, b in context_offsets)


def test_overlong_question_is_dropped_with_reason(tmp_path):
    records = [make_record(f"ok{i}", "Alpha beta.", "Which?", "beta") for i in range(3)]
    records.append(make_record("long", "Alpha beta.", "word " * 80 + "?", "beta"))
    path = write_flat(tmp_path / "train.json", records)
    pre = Preprocess(data_args(train_file=str(path), max_bad_fraction=0.5), _tokenizer())
    ds = pre.load(["train"])["train"]
    assert "long" not in ds["id"]
    (defect,) = pre.reports["train"].dropped
    assert defect.id == "long" and defect.field == "question" and "max_seq_length=64" in defect.reason


def roberta_style_tokenizer():
    """A word-level fast tokenizer with RoBERTa's pair template (<s> q </s></s> c </s>): 4 specials, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "q", "?", "."] + [f"w{i}" for i in range(50)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


@pytest.mark.parametrize("kind, specials", [("bert", 3), ("roberta", 4)])
def test_question_budget_counts_the_tokenizers_special_tokens(tmp_path, kind, specials):
    tok = _tokenizer() if kind == "bert" else roberta_style_tokenizer()
    assert tok.num_special_tokens_to_add(pair=True) == specials
    max_seq_length, doc_stride = 64, 16
    budget = max_seq_length - doc_stride - specials - 1
    word, context = ("word", LONG_CONTEXT) if kind == "bert" else ("q", " ".join(f"w{i % 50}" for i in range(300)))
    answer = context.split()[40]
    fits, too_long = " ".join([word] * budget), " ".join([word] * (budget + 1))
    assert len(tok(fits, add_special_tokens=False)["input_ids"]) == budget
    records = [make_record(f"ok{i}", context, f"{word} {word}", answer) for i in range(3)]
    records += [make_record("fits", context, fits, answer), make_record("long", context, too_long, answer)]
    path = write_flat(tmp_path / "train.json", records)
    args = data_args(train_file=str(path), validation_file=str(path), max_seq_length=max_seq_length,
                     doc_stride=doc_stride, max_bad_fraction=0.5)  # fmt: skip
    pre = Preprocess(args, tok)
    loaded = pre.load(["train", "validation"])
    assert "fits" in loaded["train"]["id"] and "long" not in loaded["train"]["id"]
    (defect,) = pre.reports["train"].dropped
    assert defect.id == "long" and defect.field == "question"
    assert f"{budget + 1} tokens; at most {budget} fit" in defect.reason and f"{specials} special tokens" in defect.reason
    # The budget-length question really is windowed (the old "- 4" made the tokenizer panic for RoBERTa).
    train = pre.train_features(loaded["train"])
    evaluation = pre.eval_features(loaded["validation"])
    assert evaluation["example_id"].count("fits") > 1 and len(train) == len(evaluation)
    assert all(len(ids) <= max_seq_length for ids in train["input_ids"])


# ---------------------------------------------------------------- --keep_answerless_windows


def _windowed_records() -> list[dict]:
    """Long contexts in 64-token windows: most windows of every question hold no answer."""
    records = [make_record(f"a{i}", LONG_CONTEXT, f"Which code is item {i}?", f"F{(i * 7) % 60:03d}") for i in range(8)]
    records += [make_record(f"u{i}", LONG_CONTEXT, f"Which code is part {i}?", None, is_impossible=True) for i in range(6)]
    return records


def _keep_features(tmp_path, records, probability: float, seed: int = 42):
    path = write_flat(tmp_path / "train.json", records)
    args = data_args(train_file=str(path), version_2_with_negative=True, keep_answerless_windows=probability)
    pre = Preprocess(args, _tokenizer(), seed=seed)
    examples = pre.load(["train"])["train"]
    return pre.train_features(examples), pre


def _rows(features) -> list[tuple]:
    """(question, input_ids, start, end) per window; the question tokens tell its example."""
    sep = _tokenizer().sep_token_id
    return [
        (tuple(ids[1 : ids.index(sep)]), tuple(ids), start, end)
        for ids, start, end in zip(features["input_ids"], features["start_positions"], features["end_positions"])
    ]


def test_keep_answerless_windows_keeps_answers_and_one_window_per_unanswerable(tmp_path):
    records = _windowed_records()
    full, full_pre = _keep_features(tmp_path, records, 1.0)
    thin, thin_pre = _keep_features(tmp_path, records, 0.1)
    full_rows, thin_rows = _rows(full), _rows(thin)
    answer_rows = [r for r in full_rows if r[2] != 0]
    assert answer_rows and [r for r in thin_rows if r[2] != 0] == answer_rows
    assert set(thin_rows) <= set(full_rows) and len(thin_rows) < len(full_rows) / 3
    questions = {r[0] for r in full_rows}
    assert len(questions) == len(records) and {r[0] for r in thin_rows} >= {r[0] for r in answer_rows}
    unanswerable = {r[0] for r in full_rows if all(o[2] == 0 for o in full_rows if o[0] == r[0])}
    assert len(unanswerable) == 6 and unanswerable <= {r[0] for r in thin_rows}  # >= 1 window each

    full_counts, thin_counts = full_pre.reports["train"].counts(), thin_pre.reports["train"].counts()
    assert full_counts["windows"] == full_counts["windows_kept"] == thin_counts["windows"] == len(full_rows)
    assert thin_counts["windows_kept"] == len(thin_rows)
    assert thin_counts["answer_windows"] == full_counts["answer_windows"] == len(answer_rows)
    assert thin_counts["answerless_windows"] == len(full_rows) - len(answer_rows)
    assert thin_counts["answerless_windows_kept"] == len(thin_rows) - len(answer_rows)


def test_keep_answerless_windows_is_seeded_and_independent_of_batches(tmp_path):
    records = _windowed_records()
    first, _ = _keep_features(tmp_path, records, 0.3, seed=1)
    again, _ = _keep_features(tmp_path, records, 0.3, seed=1)
    other, _ = _keep_features(tmp_path, records, 0.3, seed=2)
    assert _rows(first) == _rows(again)
    assert _rows(first) != _rows(other)
    # Tokenizing the examples in two separate halves selects the very same windows.
    split = []
    for part in (records[:5], records[5:]):
        features, _ = _keep_features(tmp_path, part, 0.3, seed=1)
        split += _rows(features)
    assert split == _rows(first)


def test_keep_all_windows_gives_todays_features(tmp_path):
    records = _windowed_records()
    features, pre = _keep_features(tmp_path, records, 1.0)
    assert set(features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
    evaluation = pre.eval_features(pre.load(["train"])["train"])
    assert features["input_ids"] == evaluation["input_ids"]  # every window, in order


@pytest.mark.parametrize("probability", [0.0, -0.5, 1.5])
def test_invalid_keep_answerless_windows_is_a_config_error(probability):
    from args import ConfigError

    with pytest.raises(ConfigError, match=r"keep_answerless_windows must be within \(0, 1\]"):
        data_args(keep_answerless_windows=probability)


def test_check_shows_what_keep_answerless_windows_leaves(tmp_path, capsys):
    from conftest import minilm_path
    from preprocess import main as check_main

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


def test_answerless_window_advice_below_a_fifth_of_windows_with_answers():
    from windows import answerless_window_advice

    assert answerless_window_advice(0, 0) is None
    assert answerless_window_advice(100, 20) is None
    assert answerless_window_advice(45966, 2044).startswith("only 2044 of 45966 training windows (4.4%)")
    assert "--keep_answerless_windows 0.1 keeps every answer window and 10% of the others" in answerless_window_advice(100, 19)


def test_training_warns_when_few_windows_hold_answers(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="preprocess"):
        _keep_features(tmp_path, _windowed_records(), 1.0)
    assert any("training windows" in r.message and "--keep_answerless_windows 0.1" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="preprocess"):
        _keep_features(tmp_path, _windowed_records(), 0.1)
    assert not any("--keep_answerless_windows" in r.message for r in caplog.records)


# ---------------------------------------------------------------- answer lengths, max_answer_length auto

KNOWN_LENGTHS = [2] * 95 + [10] * 4 + [40]  # 99th percentile (linear) = 10 + 0.01 * 30 = 10.3 -> 11


def _length_records() -> list[dict]:
    records = []
    for i, length in enumerate(KNOWN_LENGTHS):
        answer = " ".join(["red"] * length)
        context = f"Valve {i} is painted {answer} today."
        records.append(make_record(f"r{i}", context, f"Which colour has valve {i}?", answer))
    return records


def test_answer_token_lengths_are_the_labelled_spans(tmp_path):
    path = write_flat(tmp_path / "train.json", _length_records())
    pre = Preprocess(data_args(train_file=str(path), max_seq_length=128, doc_stride=32), _tokenizer())
    examples = pre.load(["train"])["train"]
    lengths = pre.answer_lengths(examples)
    assert lengths.tolist() == KNOWN_LENGTHS
    features = pre.train_features(examples)  # one window per record here
    assert [e - s + 1 for s, e in zip(features["start_positions"], features["end_positions"])] == KNOWN_LENGTHS
    assert pre.auto_max_answer_length(examples) == 11


def test_max_answer_length_auto_needs_training_data_and_answers(tmp_path):
    from args import ConfigError

    with pytest.raises(ConfigError, match="max_answer_length auto .* pass a number"):
        DataTrainingArguments(validation_file="dev.json", max_answer_length="auto")
    with pytest.raises(ConfigError, match="whole number of tokens or 'auto'"):
        data_args(max_answer_length="long")
    assert data_args(max_answer_length="auto").max_answer_length == "auto"
    assert data_args(max_answer_length="50").max_answer_length == 50 == data_args(max_answer_length=50).max_answer_length
    path = write_flat(tmp_path / "train.json", [make_record("u", "Alpha.", "Q?", None, is_impossible=True)])
    pre = Preprocess(data_args(train_file=str(path), max_answer_length="auto"), _tokenizer())
    with pytest.raises(DataError, match="train.json: max_answer_length auto needs answerable training questions"):
        pre.auto_max_answer_length(pre.load(["train"])["train"])


def test_check_reports_answer_lengths_and_warns_when_max_answer_length_cuts(tmp_path, capsys, caplog):
    from conftest import minilm_path
    from preprocess import main as check_main

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
