"""slmqa.data.windows: sliding windows, span labels (CLS when the answer is not inside), answerless-window subsampling."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.windows import Windower, answer_token_lengths, answerless_window_advice, label_span
from slmqa.settings import QASettings
from tests.helpers import make_record, minilm_path

LONG_CONTEXT = " ".join(f"Sentence number {i} mentions the filter code F{i:03d} for unit {i}." for i in range(60))
V2_SETTINGS = QASettings(max_seq_length=64, doc_stride=16, version_2_with_negative=True)


def examples_of(tokenizer, records, settings=V2_SETTINGS):
    return RecordChecker(tokenizer, settings, max_bad_fraction=0.0).check("train", records, SplitReport("train.json"))


def train_windows(tokenizer, records, settings=V2_SETTINGS, **options):
    """(examples, kept training windows, the windower, the train report)."""
    examples = examples_of(tokenizer, records, settings)
    windower = Windower(tokenizer, settings, **options)
    report = SplitReport("train.json")
    return examples, windower.kept_windows(windower.labelled_windows(examples), report), windower, report



def test_labels_decode_back_to_the_answer_across_windows(tokenizer):
    answers = ["Sentence number 0", "F031", "unit 59."]  # start, middle (window overlap), end
    records = [make_record(f"r{i}", LONG_CONTEXT, "Which code?", a) for i, a in enumerate(answers)]
    examples, features, windower, _ = train_windows(tokenizer, records)
    encoded = windower.encode(list(examples["question"]), list(examples["context"]))
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


def test_unanswerable_and_out_of_window_go_to_cls(tokenizer):
    records = [
        make_record("none", LONG_CONTEXT, "Which code?", None, is_impossible=True),
        make_record("late", LONG_CONTEXT, "Which code?", "F059"),
    ]
    examples, features, windower, _ = train_windows(tokenizer, records)
    samples = windower.encode(list(examples["question"]), list(examples["context"]))["overflow_to_sample_mapping"]
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


def test_eval_features_mask_non_context_offsets_and_cover_every_example(tokenizer):
    records = [make_record(f"r{i}", LONG_CONTEXT if i % 2 else "Short context here.", "Which?", None) for i in range(5)]
    examples = examples_of(tokenizer, records)
    features = Windower(tokenizer, V2_SETTINGS).eval_features(examples)
    assert set(features["example_id"]) == set(examples["id"])
    for feature in features:
        tokens = feature["input_ids"]
        sep = tokens.index(tokenizer.sep_token_id)
        assert feature["cls_index"] == 0
        assert all(o == [-1, -1] for o in feature["offset_mapping"][: sep + 1])  # CLS + question + SEP
        assert feature["offset_mapping"][-1] == [-1, -1]  # final SEP
        context_offsets = [o for o in feature["offset_mapping"] if o != [-1, -1]]
        assert context_offsets and all(0 <= a <= b for a, b in context_offsets)


def _windowed_records() -> list[dict]:
    """Long contexts in 64-token windows: most windows of every question hold no answer."""
    records = [make_record(f"a{i}", LONG_CONTEXT, f"Which code is item {i}?", f"F{(i * 7) % 60:03d}") for i in range(8)]
    records += [make_record(f"u{i}", LONG_CONTEXT, f"Which code is part {i}?", None, is_impossible=True) for i in range(6)]
    return records


def _keep_features(tokenizer, records, probability: float, seed: int = 42):
    _, features, windower, report = train_windows(tokenizer, records, keep_answerless_windows=probability, seed=seed)
    return features, windower, report


def _rows(features, tokenizer) -> list[tuple]:
    """(question, input_ids, start, end) per window; the question tokens tell its example."""
    sep = tokenizer.sep_token_id
    return [
        (tuple(ids[1 : ids.index(sep)]), tuple(ids), start, end)
        for ids, start, end in zip(features["input_ids"], features["start_positions"], features["end_positions"])
    ]


def test_keep_answerless_windows_keeps_answers_and_one_window_per_unanswerable(tokenizer):
    records = _windowed_records()
    full, _, full_report = _keep_features(tokenizer, records, 1.0)
    thin, _, thin_report = _keep_features(tokenizer, records, 0.1)
    full_rows, thin_rows = _rows(full, tokenizer), _rows(thin, tokenizer)
    answer_rows = [r for r in full_rows if r[2] != 0]
    assert answer_rows and [r for r in thin_rows if r[2] != 0] == answer_rows
    assert set(thin_rows) <= set(full_rows) and len(thin_rows) < len(full_rows) / 3
    questions = {r[0] for r in full_rows}
    assert len(questions) == len(records) and {r[0] for r in thin_rows} >= {r[0] for r in answer_rows}
    unanswerable = {r[0] for r in full_rows if all(o[2] == 0 for o in full_rows if o[0] == r[0])}
    assert len(unanswerable) == 6 and unanswerable <= {r[0] for r in thin_rows}  # >= 1 window each

    full_counts, thin_counts = full_report.counts(), thin_report.counts()
    assert full_counts["windows"] == full_counts["windows_kept"] == thin_counts["windows"] == len(full_rows)
    assert thin_counts["windows_kept"] == len(thin_rows)
    assert thin_counts["answer_windows"] == full_counts["answer_windows"] == len(answer_rows)
    assert thin_counts["answerless_windows"] == len(full_rows) - len(answer_rows)
    assert thin_counts["answerless_windows_kept"] == len(thin_rows) - len(answer_rows)


def test_keep_answerless_windows_is_seeded_and_independent_of_batches(tokenizer):
    records = _windowed_records()
    first = _rows(_keep_features(tokenizer, records, 0.3, seed=1)[0], tokenizer)
    again = _rows(_keep_features(tokenizer, records, 0.3, seed=1)[0], tokenizer)
    other = _rows(_keep_features(tokenizer, records, 0.3, seed=2)[0], tokenizer)
    assert first == again
    assert first != other
    # Tokenizing the examples in two separate halves selects the very same windows.
    split = []
    for part in (records[:5], records[5:]):
        split += _rows(_keep_features(tokenizer, part, 0.3, seed=1)[0], tokenizer)
    assert split == first


def test_keep_all_windows_gives_todays_features(tokenizer):
    records = _windowed_records()
    features, windower, _ = _keep_features(tokenizer, records, 1.0)
    assert set(features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
    evaluation = windower.eval_features(examples_of(tokenizer, records))
    assert features["input_ids"] == evaluation["input_ids"]  # every window, in order


def test_answerless_window_advice_below_a_fifth_of_windows_with_answers():
    assert answerless_window_advice(0, 0) is None
    assert answerless_window_advice(100, 20) is None
    assert answerless_window_advice(45966, 2044).startswith("only 2044 of 45966 training windows (4.4%)")
    assert "--keep_answerless_windows 0.1 keeps every answer window and 10% of the others" in answerless_window_advice(100, 19)


UNICODE_CONTEXT = (
    "Café crème costs 3,50 €.\r\nThe naïve façade (façade) is 12 m tall. "
    "東京の会議室は 5 階です。 Rocket 🚀 launch at T+10 s. "
    "Zero\u200bwidth here. Combining e\u0301 mark done."
)


@pytest.mark.parametrize("answer", ["3,50 €", "façade", "東京", "5 階", "T+10 s", "Combining e\u0301 mark"])
def test_unicode_answers_round_trip(tokenizer, answer):
    records = [make_record("u", UNICODE_CONTEXT, "Which?", answer)]
    examples, features, windower, _ = train_windows(tokenizer, records, QASettings(max_seq_length=128, doc_stride=32))
    feature = features[0]
    encoded = windower.encode(list(examples["question"]), list(examples["context"]))
    offsets = encoded["offset_mapping"][0]
    decoded = UNICODE_CONTEXT[offsets[feature["start_positions"]][0] : offsets[feature["end_positions"]][1]]
    assert decoded == answer


WORDS = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Lo")), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(WORDS, min_size=3, max_size=120), data=st.data())
def test_labels_decode_back_for_random_spans(words, data):
    tokenizer = _tokenizer()
    first = data.draw(st.integers(0, len(words) - 1))
    last = data.draw(st.integers(first, min(first + 4, len(words) - 1)))
    context = " ".join(words)
    start = len(" ".join(words[:first])) + (1 if first else 0)
    answer = " ".join(words[first : last + 1])
    assert context[start : start + len(answer)] == answer
    records = [make_record("h", context, "Which words?", answer, start=start)]
    examples, features, windower, _ = train_windows(tokenizer, records, QASettings(max_seq_length=48, doc_stride=12))
    encoded = windower.encode(list(examples["question"]), list(examples["context"]))
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
    eval_features = windower.eval_features(examples)
    for feature in eval_features:
        for a, b in feature["offset_mapping"]:
            assert (a, b) == (-1, -1) or 0 <= a <= b <= len(context)


_TOKENIZER = None


def _tokenizer():
    """The MiniLM tokenizer for hypothesis tests (which take no function-scoped fixtures)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        _TOKENIZER = AutoTokenizer.from_pretrained(str(minilm_path()))
    return _TOKENIZER


def test_answer_token_lengths_are_the_labelled_spans(tokenizer):
    lengths = [2] * 5 + [10, 1]
    records = []
    for i, length in enumerate(lengths):
        answer = " ".join(["red"] * length)
        records.append(make_record(f"r{i}", f"Valve {i} is painted {answer} today.", f"Which colour has valve {i}?", answer))
    examples, features, _, _ = train_windows(tokenizer, records, QASettings(max_seq_length=128, doc_stride=32))
    assert answer_token_lengths(list(examples["context"]), list(examples["answers"]), tokenizer).tolist() == lengths
    assert [e - s + 1 for s, e in zip(features["start_positions"], features["end_positions"])] == lengths


def test_eval_batch_is_eval_features_without_datasets(tokenizer):
    records = [make_record(f"r{i}", LONG_CONTEXT if i % 2 else "Short context here.", "Which?", None) for i in range(4)]
    examples = examples_of(tokenizer, records)
    windower = Windower(tokenizer, V2_SETTINGS)
    mapped = windower.eval_features(examples)
    direct = windower.eval_batch({key: list(examples[key]) for key in ("id", "question", "context")})
    assert {name: list(mapped[name]) for name in mapped.column_names} == {name: direct[name] for name in mapped.column_names}
