"""slmqa.decoding.squad_metrics: the official SQuAD v1.1 / v2.0 scoring, against hand-computed expectations."""

from __future__ import annotations

import pytest

from slmqa.decoding.squad_metrics import normalize_answer, squad_v1_scores, squad_v2_scores


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
