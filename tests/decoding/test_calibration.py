"""slmqa.decoding.calibration: fits recover known parameters, ECE and risk-coverage by hand, folding, candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slmqa.decoding.calibration import (
    MIN_QUESTIONS,
    MIN_SLOPE,
    answer_probabilities,
    calibrate,
    expected_calibration_error,
    first_probability,
    fit_calibration,
    fit_platt,
    fit_temperature,
    fold_overlapping,
    log_odds_first,
    question_candidates,
    risk_coverage,
)
from slmqa.decoding.predictions import Decoded
from slmqa.settings import Calibration, QASettings


def synthetic_scores(n: int, seed: int = 0) -> np.ndarray:
    """n questions of 6 candidates, the first (the answer) the best scored, spread like real span scores."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 3.0, (n, 6))
    scores[:, 0] = scores.max(axis=1) + rng.exponential(1.5, n)
    return scores


def drawn(probability: np.ndarray, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(len(probability)) < probability


def test_temperature_fit_recovers_the_temperature_that_made_the_data():
    scores = synthetic_scores(6000)
    for temperature in (0.5, 2.5):
        right = drawn(first_probability(scores, Calibration("temperature", temperature=temperature)))
        assert fit_temperature(scores, right) == pytest.approx(temperature, rel=0.1)


def test_platt_fit_recovers_slope_and_intercept():
    scores = synthetic_scores(8000)
    true = Calibration("platt", slope=0.6, intercept=-0.8)
    right = drawn(first_probability(scores, true))
    slope, intercept = fit_platt(log_odds_first(scores), right)
    assert slope == pytest.approx(0.6, abs=0.06) and intercept == pytest.approx(-0.8, abs=0.12)


def test_platt_never_ranks_answers_against_their_scores():
    """Validation answers that are right more often the lower they score (an untrained model) get the least slope."""
    scores = synthetic_scores(500)
    right = log_odds_first(scores) < np.median(log_odds_first(scores))
    slope, intercept = fit_platt(log_odds_first(scores), right)
    assert slope == MIN_SLOPE and math.isfinite(intercept)
    probability = first_probability(scores, Calibration("platt", slope=slope, intercept=intercept))
    assert probability.mean() == pytest.approx(right.mean(), abs=0.05)  # the intercept still fits the base rate


def test_fits_stay_finite_when_every_answer_is_right_or_wrong():
    scores = synthetic_scores(50)
    for right in (np.ones(50, bool), np.zeros(50, bool)):
        assert 0.02 <= fit_temperature(scores, right) <= 50.0
        assert all(math.isfinite(value) for value in fit_platt(log_odds_first(scores), right))


def test_cross_validation_picks_the_method_that_made_the_data():
    scores = synthetic_scores(3000)
    by_temperature = drawn(first_probability(scores, Calibration("temperature", temperature=2.0)))
    # A confidence too high everywhere, by a shift a temperature cannot express.
    by_platt = drawn(first_probability(scores, Calibration("platt", slope=1.0, intercept=-2.0)))
    fitted = fit_calibration(scores, by_temperature).calibration
    assert fitted.method == "temperature" and fitted.fitted_on == 3000
    fit = fit_calibration(scores, by_platt)
    assert fit.calibration.method == "platt"
    assert fit.held_out_log_loss["platt"] < fit.held_out_log_loss["temperature"]
    assert fit.calibration.ece_after < fit.calibration.ece_before / 3
    assert "5-fold cross-validated log-loss on 3000 validation answers" in fit.calibration.selection


def test_expected_calibration_error_by_hand():
    # Bin [0.9, 1]: 0.9, 0.95, 1.0 with 2 right -> |2 - 2.85| / 6; bin [0.2, 0.3): 0.2, 0.25 with 1 right
    # -> |1 - 0.45| / 6; bin [0.5, 0.6): 0.5 wrong -> 0.5 / 6. Total (0.85 + 0.55 + 0.5) / 6.
    confidence = [0.9, 0.95, 1.0, 0.2, 0.25, 0.5]
    right = [True, True, False, True, False, False]
    assert expected_calibration_error(confidence, right) == pytest.approx(1.9 / 6)
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 0.0], [False, True]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        expected_calibration_error([], [])


def test_default_risk_coverage_rows_follow_the_confidences():
    confidence = np.linspace(0.1, 0.2, 101)  # all below every fixed threshold
    rows = risk_coverage(confidence, confidence > 0.15)
    # About these shares (the thresholds are rounded down to 3 decimals, so a little more is answered).
    assert [row["coverage"] for row in rows] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.1, 0.0, 0.0, 0.0], abs=0.02)
    assert [row["confidence"] for row in rows][-3:] == [0.5, 0.7, 0.9]
    assert rows[3]["accuracy"] == 1.0 and "f1" not in rows[0]


def test_risk_coverage_by_hand():
    rows = risk_coverage(
        [0.9, 0.8, 0.4, 0.2], [True, False, True, False], f1=[1.0, 0.2, 0.6, 0.0], thresholds=(0.0, 0.5, 0.95)
    )
    assert rows[0] == {"confidence": 0.0, "answered": 4, "coverage": 1.0, "accuracy": 0.5, "f1": pytest.approx(45.0)}
    assert rows[1] == {"confidence": 0.5, "answered": 2, "coverage": 0.5, "accuracy": 0.5, "f1": pytest.approx(60.0)}
    assert rows[2] == {"confidence": 0.95, "answered": 0, "coverage": 0.0, "accuracy": None, "f1": None}


@pytest.mark.parametrize(
    "calibration",
    [
        None,
        Calibration("temperature", temperature=0.4),
        Calibration("temperature", temperature=3.0),
        Calibration("platt", slope=0.5, intercept=-1.0),
        Calibration("platt", slope=1.7, intercept=0.3),
    ],
)
def test_calibrated_probability_is_monotone_in_the_answers_score(calibration):
    others = np.array([2.0, 1.0, -1.0])
    firsts = np.linspace(-5.0, 15.0, 81)
    rows = np.column_stack([firsts, np.tile(others, (len(firsts), 1))])
    probability = first_probability(rows, calibration)
    assert np.all(np.diff(probability) > 0) and np.all((probability >= 0) & (probability <= 1))
    # Within a question the better-scored answer never gets the lower probability.
    answers = answer_probabilities([9.0, 4.0, 3.5, -2.0], calibration, others=[1.0])
    assert answers == sorted(answers, reverse=True)


def test_answer_probabilities_without_calibration_are_the_softmax():
    scores, no_answer = [3.0, 1.0, 2.0], [0.5]
    weights = np.exp(np.array(scores + no_answer))
    assert answer_probabilities(scores, None, no_answer) == pytest.approx(list(weights[:3] / weights.sum()))
    assert answer_probabilities([4.0]) == [1.0] and answer_probabilities([]) == []
    # A temperature above 1 flattens: the best answer loses, the others gain.
    flat = answer_probabilities(scores, Calibration("temperature", temperature=2.0), no_answer)
    plain = answer_probabilities(scores, None, no_answer)
    assert flat[0] < plain[0] and flat[1] > plain[1]


def test_folding_keeps_the_best_of_overlapping_spans_per_group():
    spans = [
        ("a", 10, 20),  # best
        ("a", 12, 15),  # inside it
        ("a", 5, 11),  # overlaps its start
        ("a", 20, 25),  # only touches its end: a separate answer
        ("b", 10, 20),  # same offsets, another document
        ("a", 22, 30),  # overlaps ("a", 20, 25), which was kept
        ("a", 0, 40),  # around everything
        ("a", 30, 31),  # disjoint
    ]
    assert fold_overlapping(spans) == [0, 3, 4, 7]
    assert fold_overlapping([]) == []


def nbest_entry(text: str, score: float, start: int | None, end: int | None) -> dict:
    return {
        "text": text,
        "probability": 0.0,
        "score": score,
        "start_logit": score / 2,
        "end_logit": score / 2,
        "start_char": start,
        "end_char": end,
    }


def test_question_candidates_fold_spans_and_put_the_prediction_first():
    decoded = Decoded()
    decoded.nbest = {
        # v2: best span 8, the null entry 5 (null odds -3), a sub-span folds, one disjoint span.
        "answered": [
            nbest_entry("25 Nm", 8.0, 10, 15),
            nbest_entry("25", 7.0, 10, 12),
            nbest_entry("", 5.0, None, None),
            nbest_entry("hall 3", 1.0, 30, 36),
        ],
        "abstains": [nbest_entry("", 9.0, None, None), nbest_entry("blue", 4.0, 0, 4)],
        "no_span": [nbest_entry("", 2.0, None, None)],
    }
    decoded.null_odds = {"answered": -3.0, "abstains": 5.0, "no_span": 1e6}
    v2 = QASettings(version_2_with_negative=True, null_score_diff_threshold=-1.0)
    candidates = question_candidates(decoded, v2)
    assert candidates.ids == ["answered", "abstains"] and candidates.predictions == ["25 Nm", ""]
    # "No answer" is a candidate at its null score, first when it is the prediction.
    assert candidates.scores.tolist() == [[8.0, 1.0, 5.0], [9.0, 4.0, -np.inf]]
    # At a threshold of -4 the first question abstains too (its null odds -3 exceed it), though its
    # null score is below its best span's: the threshold decides the prediction, the scores its confidence.
    abstaining = question_candidates(decoded, QASettings(version_2_with_negative=True, null_score_diff_threshold=-4.0))
    assert abstaining.predictions == ["", ""] and abstaining.scores[0].tolist() == [5.0, 8.0, 1.0]
    assert first_probability(abstaining.scores)[0] < 0.5
    v1 = question_candidates(decoded, QASettings())
    assert v1.predictions == ["25 Nm", "blue"] and v1.scores.tolist() == [[8.0, 1.0], [4.0, -np.inf]]


def test_calibrate_from_decoded_predictions():
    decoded, gold = Decoded(), {}
    rng = np.random.default_rng(3)
    for i in range(40):
        best = float(rng.normal(6.0, 3.0))
        decoded.nbest[f"q{i}"] = [nbest_entry("torque 25", best, 0, 9), nbest_entry("hall", 2.0, 20, 24)]
        gold[f"q{i}"] = ["the torque 25"] if best > 6.0 else ["hall"]  # right exactly when the score is high
    fit = calibrate(decoded, gold, QASettings())
    assert fit is not None and fit.calibration.fitted_on == 40 and fit.right.sum() == (fit.f1 >= 0.5).sum()
    assert fit.calibration.ece_after < fit.calibration.ece_before
    report = fit.report()
    assert report["calibration"]["method"] in ("temperature", "platt") and report["risk_coverage"][0]["coverage"] == 1.0
    few = Decoded(nbest={qid: decoded.nbest[qid] for qid in list(decoded.nbest)[: MIN_QUESTIONS - 1]})
    assert calibrate(few, gold, QASettings()) is None
