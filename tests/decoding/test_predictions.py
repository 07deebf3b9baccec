"""slmqa.decoding.predictions: every example's windows decoded into one answer, n-best list and null odds."""

from __future__ import annotations

import numpy as np
import pytest

from slmqa.decoding.predictions import NO_SPAN_NULL_ODDS, decode_predictions, references
from slmqa.settings import QASettings


def decode(examples, features, starts, ends, **settings):
    """decode_predictions with QASettings(**settings)."""
    return decode_predictions(examples, features, starts, ends, QASettings(**settings))



EXAMPLES = [
    {"id": "a", "context": "abc def ghi jkl mno", "answers": {"text": ["jkl mno"], "answer_start": [12]}},
    {"id": "b", "context": "pqr stu", "answers": {"text": ["stu"], "answer_start": [4]}},
    {"id": "c", "context": "xyz", "answers": {"text": ["xyz"], "answer_start": [0]}},
]


# Windows of a and b interleaved, b shorter (4 tokens); c has none.
FEATURES = [
    {"example_id": "a", "offset_mapping": [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11]], "cls_index": 0},
    {"example_id": "b", "offset_mapping": [[-1, -1], [-1, -1], [0, 3], [4, 7]], "cls_index": 0},
    {"example_id": "a", "offset_mapping": [[-1, -1], [-1, -1], [8, 11], [12, 15], [16, 19]], "cls_index": 0},
]


STARTS = [[1, 0, 3, 0, 0], [0, 0, 1, 2], [0.5, 0, 0, 4, 0]]


ENDS = [[2, 0, 0, 3, 0], [0, 0, 0, 3], [0.5, 0, 0, 0, 4]]


def padded(rows, value=-100.0):
    out = np.full((len(rows), max(map(len, rows))), value, dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def test_decode_predictions_v1():
    decoded = decode(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))
    assert decoded.predictions == {"a": "jkl mno", "b": "stu", "c": ""}
    assert list(decoded.predictions) == ["a", "b", "c"]  # each example exactly once, in order
    assert decoded.no_features == ["c"]
    assert decoded.no_valid_span == []
    # a: null min(3, 1) = 1, best 8; b: null 0, best (3,3) = 5.
    assert decoded.null_odds == {"a": -7.0, "b": -5.0, "c": NO_SPAN_NULL_ODDS}
    best = decoded.nbest["b"][0]
    assert best == {
        "text": "stu", "probability": best["probability"], "score": 5.0,
        "start_logit": 2.0, "end_logit": 3.0, "start_char": 4, "end_char": 7,
    }  # fmt: skip
    # b's candidates: (3,3)=5, (2,3)=4, (2,2)=1 -> softmax.
    weights = np.exp(np.array([5.0, 4.0, 1.0]) - 5.0)
    assert [e["probability"] for e in decoded.nbest["b"]] == pytest.approx(list(weights / weights.sum()))
    assert all(type(e["probability"]) is float for e in decoded.nbest["b"])
    assert all(e["text"] for e in decoded.nbest["a"])  # v1: no null entry


def test_padded_array_and_list_of_arrays_agree():
    from_lists = decode(
        EXAMPLES,
        FEATURES,
        [np.array(r, dtype=np.float32) for r in STARTS],
        [np.array(r, dtype=np.float32) for r in ENDS],
    )
    from_padded = decode(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))
    # Padding beyond a feature's own length is ignored even when it would win.
    from_high_padding = decode(EXAMPLES, FEATURES, padded(STARTS, 50.0), padded(ENDS, 50.0))
    assert from_lists == from_padded == from_high_padding


def test_datasets_input_agrees_with_dicts():
    from datasets import Dataset

    decoded = decode(Dataset.from_list(EXAMPLES), Dataset.from_list(FEATURES), padded(STARTS), padded(ENDS))
    assert decoded == decode(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))


def v2_decode(threshold, cls_logit=4.0):
    """b's null score is 2 * cls_logit against a best span of 5."""
    starts = [list(r) for r in STARTS]
    ends = [list(r) for r in ENDS]
    starts[1][0] = ends[1][0] = cls_logit
    return decode(
        EXAMPLES,
        FEATURES,
        padded(starts),
        padded(ends),
        version_2_with_negative=True,
        null_score_diff_threshold=threshold,
    )


def test_v2_null_threshold():
    assert v2_decode(0.0).null_odds["b"] == 3.0  # 8 - 5
    assert v2_decode(0.0).predictions == {"a": "jkl mno", "b": "", "c": ""}
    assert v2_decode(2.9).predictions["b"] == ""
    assert v2_decode(3.0).predictions["b"] == "stu"  # strictly greater is needed
    assert v2_decode(0.0, cls_logit=2.0).predictions["b"] == "stu"  # null 4 < 5


def test_v2_nbest_holds_null_entry_at_its_score():
    nbest = v2_decode(0.0).nbest
    assert [(e["text"], e["score"]) for e in nbest["b"]] == [("", 8.0), ("stu", 5.0), ("pqr stu", 4.0), ("pqr", 1.0)]
    assert nbest["b"][0]["start_char"] is None
    assert (nbest["b"][0]["start_logit"], nbest["b"][0]["end_logit"]) == (4.0, 4.0)
    # a: the null entry (min over windows: 1) sits among the spans by score.
    a_scores = [e["score"] for e in nbest["a"]]
    assert a_scores == sorted(a_scores, reverse=True)
    assert ("", 1.0) in [(e["text"], e["score"]) for e in nbest["a"]]
    assert sum(e["probability"] for e in nbest["a"]) == pytest.approx(1.0)


def test_example_without_valid_span():
    features = [{"example_id": "z", "offset_mapping": [[-1, -1], [-1, -1]], "cls_index": 0}]
    examples = [{"id": "z", "context": "q", "answers": {"text": [], "answer_start": []}}]
    logits = [np.array([1.0, 2.0])]
    decoded = decode(examples, features, logits, logits, version_2_with_negative=True)
    assert decoded.predictions == {"z": ""}
    assert decoded.no_valid_span == ["z"]
    assert decoded.null_odds == {"z": NO_SPAN_NULL_ODDS}
    assert [e["text"] for e in decoded.nbest["z"]] == [""]


def test_unknown_example_id_raises():
    features = FEATURES + [{"example_id": "ghost", "offset_mapping": [[-1, -1], [0, 1]], "cls_index": 0}]
    with pytest.raises(ValueError, match="ghost"):
        decode(EXAMPLES, features, STARTS + [[0, 0]], ENDS + [[0, 0]])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="3 features"):
        decode(EXAMPLES, FEATURES, STARTS[:2], ENDS[:2])
    with pytest.raises(ValueError, match="more than once"):
        decode(EXAMPLES + EXAMPLES[:1], FEATURES, STARTS, ENDS)


def test_nan_logits_do_not_stop_decoding():
    # A diverged model can output NaN; decoding still answers every example, never with a NaN span.
    starts, ends = padded(STARTS), padded(ENDS)
    starts[0, 2] = np.nan  # a's window 0, first context token
    ends[2, 4] = np.nan  # a's window 1, last context token
    decoded = decode(EXAMPLES, FEATURES, starts, ends)
    assert list(decoded.predictions) == ["a", "b", "c"]
    assert decoded.predictions["b"] == "stu"
    assert all(np.isfinite(entry["score"]) for entry in decoded.nbest["a"])


def test_references_are_gold_texts_by_id():
    assert references(EXAMPLES) == {"a": ["jkl mno"], "b": ["stu"], "c": ["xyz"]}
