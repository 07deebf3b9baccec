"""Stage 3: SQuAD metrics (squad_metrics), span decoding (span_decoding, postprocess), against hand-computed expectations."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from postprocess import NO_SPAN_NULL_ODDS, PostProcess, decode_predictions
from span_decoding import decode_spans
from squad_metrics import normalize_answer, squad_v1_scores, squad_v2_scores

# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The  Quick, Brown-Fox!", "quick brownfox"),  # case, punctuation, article, spaces
        ("An apple a day", "apple day"),
        ("theater Anthem", "theater anthem"),  # articles only as whole words
        ("a-n", ""),  # punctuation goes first, then "an" is an article
        ("\tHello\n  World ", "hello world"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


# ---------------------------------------------------------------- v1.1 metrics


def test_v1_partial_overlap_f1():
    # pred tokens [red, big, car] (3), gold [big, red, old, truck] (4): 2 in common.
    precision, recall = 2 / 3, 2 / 4
    scores = squad_v1_scores({"q": "red big car"}, {"q": ["The big red old truck"]})
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))  # 4/7
    assert scores["f1"] == pytest.approx(400 / 7)


def test_v1_max_over_gold_answers():
    # "Paris France" vs "Paris": P=1/2, R=1 -> 2/3; vs "the city of Paris": P=1/2, R=1/3 -> 0.4.
    scores = squad_v1_scores({"q": "Paris France"}, {"q": ["Paris", "the city of Paris"]})
    assert scores["f1"] == pytest.approx(100 * 2 / 3)
    exact = squad_v1_scores({"q": "City of Paris."}, {"q": ["Paris", "the city of Paris"]})
    assert exact == {"exact_match": 100.0, "f1": 100.0}


def test_v1_empty_against_empty_is_exact_but_f1_zero():
    # "a" and "the" both normalise to "": equal, yet v1.1 F1 has no common token.
    assert squad_v1_scores({"q": "the"}, {"q": ["a"]}) == {"exact_match": 100.0, "f1": 0.0}


def test_v1_keeps_gold_answers_that_normalise_to_nothing():
    # v1.1 does not filter gold answers: "an" equals "The" after normalisation.
    assert squad_v1_scores({"q": "an"}, {"q": ["The", "cat"]}) == {"exact_match": 100.0, "f1": 0.0}
    # v2.0 drops "The", leaving only "cat".
    v2 = squad_v2_scores({"q": "an"}, {"q": ["The", "cat"]}, {"q": 0.0})
    assert (v2["exact"], v2["f1"]) == (0.0, 0.0)


def test_v1_averages_and_ignores_unknown_predictions():
    predictions = {"q1": "blue", "q2": "green", "extra": "ignored"}
    assert squad_v1_scores(predictions, {"q1": ["Blue."], "q2": ["red"]}) == {"exact_match": 50.0, "f1": 50.0}


def test_missing_prediction_is_an_error():
    with pytest.raises(ValueError, match="q2"):
        squad_v1_scores({"q1": "x"}, {"q1": ["x"], "q2": ["y"]})
    with pytest.raises(ValueError, match="q2"):
        squad_v2_scores({"q1": "x"}, {"q1": ["x"], "q2": []}, {"q1": 0.0, "q2": 0.0})


# ---------------------------------------------------------------- v2.0 metrics


def test_v2_unanswerable_against_empty_and_non_empty_predictions():
    references = {"empty": [], "said": [], "only_article": ["The"]}
    predictions = {"empty": "", "said": "something", "only_article": ""}
    probs = dict.fromkeys(references, 0.0)
    scores = squad_v2_scores(predictions, references, probs)
    # empty: 1/1; said: 0/0; only_article: gold "The" normalises to nothing -> [""] -> 1/1.
    assert scores["exact"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)
    # "only_article" has a gold list, so it counts as answerable (official make_qid_to_has_ans).
    assert (scores["HasAns_total"], scores["NoAns_total"]) == (1, 2)
    assert scores["NoAns_exact"] == 50.0


def test_v2_partial_f1_and_max_over_gold():
    scores = squad_v2_scores({"q": "red big car"}, {"q": ["nothing alike", "The big red old truck"]}, {"q": 0.0})
    assert scores["f1"] == pytest.approx(400 / 7)
    assert scores["exact"] == 0.0
    assert "NoAns_total" not in scores  # only answerable questions -> no NoAns_* keys


# Six questions; raw (exact, f1) and no-answer probability:
#   q1 answerable   "blue" / "blue"                     (1, 1)    0.5
#   q2 unanswerable ""                                  (1, 1)    3.0
#   q3 answerable   "red truck" / "big red truck"       (0, 0.8)  1.0   P=1, R=2/3
#   q4 unanswerable "green"                             (0, 0)    1.0   (tie with q3)
#   q5 answerable   "eight" / "seven"                   (0, 0)    2.0
#   q6 unanswerable "dog"                               (0, 0)    4.0
REFERENCES = {"q1": ["blue"], "q2": [], "q3": ["big red truck"], "q4": [], "q5": ["seven"], "q6": []}
PREDICTIONS = {"q1": "blue", "q2": "", "q3": "red truck", "q4": "green", "q5": "eight", "q6": "dog"}
PROBS = {"q1": 0.5, "q2": 3.0, "q3": 1.0, "q4": 1.0, "q5": 2.0, "q6": 4.0}


def test_v2_threshold_application():
    scores = squad_v2_scores(PREDICTIONS, REFERENCES, PROBS, no_answer_threshold=1.0)
    # prob > 1.0 for q2, q5, q6 -> scored as "no answer": q2 1, q5 0, q6 1 (was 0 raw).
    # q3/q4 at exactly 1.0 keep their raw scores.
    assert scores["total"] == 6
    assert scores["exact"] == pytest.approx(100 * 3 / 6)  # q1 q2 q6
    assert scores["f1"] == pytest.approx(100 * 3.8 / 6)  # 1 + 1 + 0.8 + 1
    assert (scores["HasAns_exact"], scores["HasAns_f1"], scores["HasAns_total"]) == pytest.approx((100 / 3, 60.0, 3))
    assert (scores["NoAns_exact"], scores["NoAns_f1"], scores["NoAns_total"]) == pytest.approx((200 / 3, 200 / 3, 3))
    # A threshold above every probability leaves the raw scores: exact q1 q2, f1 1 + 1 + 0.8.
    raw = squad_v2_scores(PREDICTIONS, REFERENCES, PROBS, no_answer_threshold=10.0)
    assert raw["exact"] == pytest.approx(100 * 2 / 6)
    assert raw["f1"] == pytest.approx(100 * 2.8 / 6)


def test_v2_best_threshold_search():
    scores = squad_v2_scores(PREDICTIONS, REFERENCES, PROBS)
    # Start at 3 (all unanswerable right); walk q1 0.5, q3 1.0, q4 1.0, q5 2.0, q2 3.0, q6 4.0.
    # f1:    3 -> q1 +1 = 4 (best, 0.5) -> q3 +0.8 = 4.8 (best, 1.0) -> q4 -1 -> q5 +0 -> q2 0 -> q6 -1.
    # exact: 3 -> q1 +1 = 4 (best, 0.5) -> q3 +0 (not better) -> ...
    assert scores["best_f1"] == pytest.approx(100 * 4.8 / 6)
    assert scores["best_f1_thresh"] == 1.0
    assert scores["best_exact"] == pytest.approx(100 * 4 / 6)
    assert scores["best_exact_thresh"] == 0.5
    assert list(scores) == [
        "exact", "f1", "total",
        "HasAns_exact", "HasAns_f1", "HasAns_total",
        "NoAns_exact", "NoAns_f1", "NoAns_total",
        "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
    ]  # fmt: skip


def test_v2_best_threshold_ties_follow_reference_order():
    # q4 (costs 1) before q3 (adds 0.8) at the same probability: 4 -> 3 -> 3.8, never above 4.
    reordered = {key: REFERENCES[key] for key in ("q1", "q2", "q4", "q3", "q5", "q6")}
    scores = squad_v2_scores(PREDICTIONS, reordered, PROBS)
    assert scores["best_f1"] == pytest.approx(100 * 4 / 6)
    assert scores["best_f1_thresh"] == 0.5


def test_v2_best_threshold_when_answering_nothing_is_best():
    scores = squad_v2_scores({"a": "x", "b": "y"}, {"a": [], "b": ["z"]}, {"a": 1.0, "b": 2.0})
    # 1 -> a -1 = 0 -> b +0 = 0: never better than answering nothing.
    assert (scores["best_exact"], scores["best_exact_thresh"]) == (50.0, 0.0)


# ---------------------------------------------------------------- decode_spans

# One window: [CLS] [question] abc def ghi jkl
CONTEXT = "abc def ghi jkl"
OFFSETS = [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11], [12, 15]]


def spans(start, end, n_best_size=20, max_answer_length=30, offsets=None, cls_index=None):
    start, end = np.atleast_2d(np.asarray(start, dtype=np.float32)), np.atleast_2d(np.asarray(end, dtype=np.float32))
    offsets = np.asarray(OFFSETS if offsets is None else offsets)
    if offsets.ndim == 2:
        offsets = offsets[None]
    cls_index = np.zeros(len(start), dtype=int) if cls_index is None else np.asarray(cls_index)
    return decode_spans(start, end, offsets, cls_index, n_best_size, max_answer_length)


def chars(candidates):
    return [(c["start_char"], c["end_char"]) for c in candidates]


def test_best_span_and_non_context_rejected():
    # Position 1 (question) has the highest logits: (1, 1) would score 18 but is no context.
    candidates, null = spans([0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2], n_best_size=5)
    # (3,4)=11, (4,4)=8, (2,4)=7 and (3,5)=7 (lower start first), (3,3)=6.
    assert chars(candidates) == [(4, 11), (8, 11), (0, 11), (4, 15), (4, 7)]
    assert [c["score"] for c in candidates] == [11.0, 8.0, 7.0, 7.0, 6.0]
    assert (candidates[0]["start_logit"], candidates[0]["end_logit"]) == (5.0, 6.0)
    assert null == 0.0
    assert candidates[0]["text"] is None


def test_end_before_start_rejected():
    candidates, _ = spans([0, 0, 0, 0, 8, 0], [0, 0, 0, 7, 0, 0])
    # (4,3) would score 15; the best valid ones are (4,4)=8 and (4,5)=8, lower end first.
    assert chars(candidates[:2]) == [(8, 11), (8, 15)]
    assert all(start < end for start, end in chars(candidates))


def test_too_long_span_rejected():
    start, end = [0, 0, 5, 0, 0, 0], [0, 0, 0, 0, 0, 5]
    short, _ = spans(start, end, max_answer_length=3)
    assert (0, 15) not in chars(short)
    assert short[0]["score"] == 5.0
    long_enough, _ = spans(start, end, max_answer_length=4)
    assert chars(long_enough)[0] == (0, 15)
    assert long_enough[0]["score"] == 10.0


def test_only_top_k_starts_and_ends_are_paired():
    # n_best_size=1 keeps start 4 and end 3 only: their pair is invalid, so nothing is left.
    candidates, null = spans([0, 0, 0, 1, 8, 0], [0, 0, 0, 7, 1, 0], n_best_size=1)
    assert candidates == []
    assert null == 0.0
    candidates, _ = spans([0, 0, 0, 1, 8, 0], [0, 0, 0, 7, 1, 0], n_best_size=2)
    # Starts {4, 3}, ends {3, 4}: (4,4)=9, (3,3)=8, (3,4)=2; (4,3) is invalid.
    assert chars(candidates) == [(8, 11), (4, 7)]


def test_non_context_positions_do_not_take_top_k_slots():
    # Position 1 (question) has the top logits; with one slot it must not crowd out (3, 4).
    candidates, _ = spans([0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2], n_best_size=1)
    assert chars(candidates) == [(4, 11)]


def test_top_k_ties_keep_the_lower_positions():
    # 20 context tokens (position p covers chars [10p, 10p+5)), logit 1 at odd positions.
    # Top 3 starts and ends are positions 1, 3, 5 (numpy's unstable argsort picks 1, 3, 7);
    # with one-token answers the spans are (1,1), (3,3), (5,5), all scoring 2.
    offsets = [[-1, -1]] + [[10 * p, 10 * p + 5] for p in range(1, 21)]
    logits = [0.0] + [1.0 if p % 2 else 0.0 for p in range(1, 21)]
    candidates, _ = spans(logits, logits, n_best_size=3, max_answer_length=1, offsets=offsets)
    assert chars(candidates) == [(10, 15), (30, 35), (50, 55)]


def test_cls_index_respected():
    start, end = [0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2]
    assert spans(start, end, cls_index=[1])[1] == 18.0
    assert spans(start, end, cls_index=[0])[1] == 0.0


def test_multi_window_best_window_and_null_minimum():
    # Context "abc def ghi jkl mno"; window 0 covers abc def ghi, window 1 ghi jkl mno.
    offsets = [
        [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11]],
        [[-1, -1], [-1, -1], [8, 11], [12, 15], [16, 19]],
    ]
    start = [[1, 0, 3, 0, 0], [0.5, 0, 0, 4, 0]]
    end = [[2, 0, 0, 3, 0], [0.5, 0, 0, 0, 4]]
    candidates, null = spans(start, end, offsets=offsets, n_best_size=2)
    assert chars(candidates) == [(12, 19), (0, 7)]  # window 1: 4+4=8, window 0: 3+3=6
    assert null == 1.0  # min(1+2, 0.5+0.5)


def test_equal_scores_prefer_the_lower_window():
    offsets = [[[-1, -1], [0, 3]], [[-1, -1], [8, 11]]]
    candidates, _ = spans([[0, 2], [0, 2]], [[0, 3], [0, 3]], offsets=offsets)
    assert chars(candidates) == [(0, 3), (8, 11)]


def test_padded_window_positions_are_never_used():
    # Window 1 is shorter: its last position is padding (offsets -1, logits -inf).
    offsets = [[[-1, -1], [0, 3], [4, 7]], [[-1, -1], [8, 11], [-1, -1]]]
    start = [[0, 1, 0], [0, 2, -np.inf]]
    end = [[0, 0, 1], [0, 2, -np.inf]]
    candidates, null = spans(start, end, offsets=offsets)
    assert chars(candidates) == [(8, 11), (0, 7), (0, 3), (4, 7)]
    assert null == 0.0


# ---------------------------------------------------------------- decode_predictions

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
    decoded = decode_predictions(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))
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
    from_lists = decode_predictions(
        EXAMPLES,
        FEATURES,
        [np.array(r, dtype=np.float32) for r in STARTS],
        [np.array(r, dtype=np.float32) for r in ENDS],
    )
    from_padded = decode_predictions(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))
    # Padding beyond a feature's own length is ignored even when it would win.
    from_high_padding = decode_predictions(EXAMPLES, FEATURES, padded(STARTS, 50.0), padded(ENDS, 50.0))
    assert from_lists == from_padded == from_high_padding


def test_datasets_input_agrees_with_dicts():
    from datasets import Dataset

    decoded = decode_predictions(Dataset.from_list(EXAMPLES), Dataset.from_list(FEATURES), padded(STARTS), padded(ENDS))
    assert decoded == decode_predictions(EXAMPLES, FEATURES, padded(STARTS), padded(ENDS))


def v2_decode(threshold, cls_logit=4.0):
    """b's null score is 2 * cls_logit against a best span of 5."""
    starts = [list(r) for r in STARTS]
    ends = [list(r) for r in ENDS]
    starts[1][0] = ends[1][0] = cls_logit
    return decode_predictions(
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
    decoded = decode_predictions(examples, features, logits, logits, version_2_with_negative=True)
    assert decoded.predictions == {"z": ""}
    assert decoded.no_valid_span == ["z"]
    assert decoded.null_odds == {"z": NO_SPAN_NULL_ODDS}
    assert [e["text"] for e in decoded.nbest["z"]] == [""]


def test_unknown_example_id_raises():
    features = FEATURES + [{"example_id": "ghost", "offset_mapping": [[-1, -1], [0, 1]], "cls_index": 0}]
    with pytest.raises(ValueError, match="ghost"):
        decode_predictions(EXAMPLES, features, STARTS + [[0, 0]], ENDS + [[0, 0]])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="3 features"):
        decode_predictions(EXAMPLES, FEATURES, STARTS[:2], ENDS[:2])
    with pytest.raises(ValueError, match="more than once"):
        decode_predictions(EXAMPLES + EXAMPLES[:1], FEATURES, STARTS, ENDS)


# ---------------------------------------------------------------- PostProcess


def test_postprocess_v2_scores_write_and_files(tmp_path):
    post = PostProcess(version_2_with_negative=True, null_score_diff_threshold=0.0, output_dir=str(tmp_path))
    starts = [list(r) for r in STARTS]
    ends = [list(r) for r in ENDS]
    starts[1][0] = ends[1][0] = 4.0  # b predicted "" (null odds 3)
    decoded, metrics = post(EXAMPLES, FEATURES, (padded(starts), padded(ends)), prefix="eval")
    # a right, b "" against "stu" -> 0, c "" against "xyz" -> 0.
    assert metrics["exact"] == pytest.approx(100 / 3)
    assert metrics["total"] == 3
    # The search walks the best spans by null odds (all answerable, start 0): a -7 (+1 -> 1),
    # b 3 ("stu", nulled at threshold 0 but right above 3: +1 -> 2, best), c 1e6 (no span, +0).
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == (pytest.approx(200 / 3), 3.0)
    assert decoded.span_predictions == {"a": "jkl mno", "b": "stu", "c": ""}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["eval_nbest_predictions.json", "eval_null_odds.json", "eval_predictions.json"]
    assert json.loads((tmp_path / "eval_predictions.json").read_text(encoding="utf-8")) == decoded.predictions
    assert json.loads((tmp_path / "eval_null_odds.json").read_text(encoding="utf-8")) == {"a": -7.0, "b": 3.0, "c": 1e6}
    nbest = json.loads((tmp_path / "eval_nbest_predictions.json").read_text(encoding="utf-8"))
    assert set(nbest) == {"a", "b", "c"}
    assert set(nbest["a"][0]) == {"text", "probability", "score", "start_logit", "end_logit", "start_char", "end_char"}


def test_postprocess_v1_writes_two_files_and_scores(tmp_path):
    post = PostProcess(output_dir=str(tmp_path / "out"))
    decoded, metrics = post(EXAMPLES, FEATURES, (padded(STARTS), padded(ENDS)), prefix="predict")
    assert metrics == {"exact_match": pytest.approx(200 / 3), "f1": pytest.approx(200 / 3)}
    paths = post.write(decoded, prefix="again")
    assert [os.path.basename(p) for p in paths] == ["again_predictions.json", "again_nbest_predictions.json"]


def test_postprocess_without_answers_or_output_dir():
    post = PostProcess()
    unlabelled = [dict(e, answers={"text": [], "answer_start": []}) for e in EXAMPLES]
    decoded, metrics = post(unlabelled, FEATURES, (STARTS, ENDS))
    assert metrics == {}
    assert decoded.predictions["a"] == "jkl mno"
    assert post.write(decoded) == []
    assert PostProcess.references(EXAMPLES) == {"a": ["jkl mno"], "b": ["stu"], "c": ["xyz"]}


def test_nan_logits_do_not_stop_decoding():
    # A diverged model can output NaN; decoding still answers every example, never with a NaN span.
    starts, ends = padded(STARTS), padded(ENDS)
    starts[0, 2] = np.nan  # a's window 0, first context token
    ends[2, 4] = np.nan  # a's window 1, last context token
    decoded = decode_predictions(EXAMPLES, FEATURES, starts, ends)
    assert list(decoded.predictions) == ["a", "b", "c"]
    assert decoded.predictions["b"] == "stu"
    assert all(np.isfinite(entry["score"]) for entry in decoded.nbest["a"])


def test_v2_best_threshold_recovers_answers_nulled_at_the_threshold_in_use():
    """Every answerable question is nulled at threshold 0; a threshold above their null odds answers them."""
    examples = [
        {"id": "a", "context": "red blue", "answers": {"text": ["red"], "answer_start": [0]}},
        {"id": "b", "context": "red blue", "answers": {"text": ["blue"], "answer_start": [4]}},
        {"id": "n", "context": "red blue", "answers": {"text": [], "answer_start": []}},
    ]
    offsets = [[-1, -1], [0, 3], [4, 8]]
    features = [{"example_id": qid, "offset_mapping": offsets, "cls_index": 0} for qid in ("a", "b", "n")]
    # CLS scores 3+3=6; best spans score 2+2=4 ("red" for a, "blue" for b): null odds 2 > 0.
    # n: CLS 6 against its best span "red" (1+1=2): null odds 4.
    starts = np.array([[3, 2, 0], [3, 0, 2], [3, 1, 0]], dtype=np.float32)
    ends = np.array([[3, 2, 0], [3, 0, 2], [3, 1, 0]], dtype=np.float32)
    post = PostProcess(version_2_with_negative=True, null_score_diff_threshold=0.0)
    decoded, metrics = post(examples, features, (starts, ends))
    assert decoded.predictions == {"a": "", "b": "", "n": ""}
    assert decoded.null_odds == {"a": 2.0, "b": 2.0, "n": 4.0}
    assert metrics["HasAns_f1"] == 0.0 and metrics["f1"] == pytest.approx(100 / 3)  # what was written
    # Answering when null odds <= 2 recovers a and b and still abstains on n.
    assert metrics["best_f1"] == 100.0 > metrics["f1"]
    assert metrics["best_f1_thresh"] == 2.0 > 0
    rescored = PostProcess(version_2_with_negative=True, null_score_diff_threshold=metrics["best_f1_thresh"])
    assert rescored(examples, features, (starts, ends))[1]["f1"] == 100.0
