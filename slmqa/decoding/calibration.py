"""Answer confidence that means what it says: fit, apply and measure a calibration of span scores.

A span's softmax over its question's candidates ranks answers well, but it is no estimate
of how often such an answer is right. After training, run_qa.py fits a calibration on the
validation split's predictions (right: SQuAD F1 >= 0.5 against the gold answers, so an
empty prediction on an unanswerable question is right), qa_settings.json keeps it
(settings.Calibration), and the reader and qa_predict.py apply it.

Candidates: a question's n-best spans with the overlapping ones folded into the better
scored (`fold_overlapping`, the rule by which the reader ranks answers), plus, for a SQuAD
v2 model, one "no answer" candidate at its null score. The threshold decides what is
predicted, not how sure the model is: scored at null score - threshold (so that the
prediction were always the best-scored candidate) abstentions looked surer than they are,
and on held-out SQuAD v2 questions the calibrated confidence separated right from wrong
answers less well (AUROC 0.53 against 0.59) and was less calibrated (ECE 0.056 against
0.035). So an abstention may be a prediction with probability below one half. Questions are
rows of a (questions, candidates) score matrix, the predicted answer first, padded with -inf.

Two methods, one small fit each (numpy only, no torch):
- temperature: p = softmax(scores / T)[answer]; one parameter, keeps the ranking within a question.
- platt: p = sigmoid(slope * x + intercept), x the log-odds of the plain softmax probability;
  the intercept can also move a confidence that is too high or too low everywhere.
`fit_calibration` keeps the one with the lower 5-fold cross-validated log-loss and refits it
on every question; its ECE after and risk-coverage rows come from the out-of-fold
probabilities, so the fit does not flatter itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from slmqa.decoding.predictions import Decoded
from slmqa.decoding.squad_metrics import answer_f1
from slmqa.settings import CALIBRATION_METHODS, Calibration, QASettings

logger = logging.getLogger(__name__)

RIGHT_F1 = 0.5  # an answer is right when its SQuAD F1 against the gold answers reaches this
ECE_BINS = 10
FOLDS = 5
MIN_QUESTIONS = 10  # fewer validation questions with an answer: no calibration is fitted
# Risk-coverage rows: these confidences, and those at which about these shares of questions are answered
# (a calibrated confidence may sit near the model's accuracy everywhere, below every fixed c).
COVERAGE_THRESHOLDS = (0.5, 0.7, 0.9)
COVERAGE_SHARES = (1.0, 0.75, 0.5, 0.25, 0.1)
# The log-odds of a lone candidate are infinite; clipped, so a Platt fit stays finite.
MAX_LOG_ODDS = 30.0
_LOG_TEMPERATURES = (math.log(0.02), math.log(50.0))
_EPSILON = 1e-7  # probabilities are clipped to [eps, 1 - eps] in the log-loss
_PLATT_PRIOR = 1e-3  # pulls slope, intercept towards (1, 0): finite even on separable data
# The least Platt slope: a better-scored answer must never get the lower probability, even
# where the validation answers say the opposite (an untrained model's scores can).
MIN_SLOPE = 0.01


def fold_overlapping(spans: Sequence[tuple[Hashable, int, int]]) -> list[int]:
    """Positions of the spans that stay answers, for (group, start, end) spans given best first.

    A span overlapping, inside or around a span kept before it in the same group (document)
    is that answer read less well, not a second answer; spans that only touch stay apart.
    """
    kept: list[int] = []
    taken: dict[Hashable, list[tuple[int, int]]] = {}
    for index, (group, start, end) in enumerate(spans):
        ranges = taken.setdefault(group, [])
        if any(start < other_end and other_start < end for other_start, other_end in ranges):
            continue
        ranges.append((start, end))
        kept.append(index)
    return kept


# ------------------------------------------------------------------ probabilities


def _logsumexp_rows(matrix: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp; -inf for a row without any finite value (no other candidate)."""
    top = matrix.max(axis=1) if matrix.shape[1] else np.full(len(matrix), -np.inf)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return shift + np.log(np.exp(matrix - shift[:, None]).sum(axis=1))


def _softmax_first(scores: np.ndarray, temperature: float) -> np.ndarray:
    scaled = scores / temperature
    return np.exp(scaled[:, 0] - _logsumexp_rows(scaled))


def log_odds_first(scores: np.ndarray) -> np.ndarray:
    """Log-odds of each row's first candidate under the plain softmax: its score - logsumexp(the others)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.clip(scores[:, 0] - _logsumexp_rows(scores[:, 1:]), -MAX_LOG_ODDS, MAX_LOG_ODDS)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-values))


def first_probability(scores: np.ndarray, calibration: Calibration | None = None) -> np.ndarray:
    """Each row's probability that its first candidate is right: the plain softmax without a calibration."""
    scores = np.asarray(scores, dtype=np.float64)
    if calibration is None:
        return _softmax_first(scores, 1.0)
    if calibration.method == "temperature":
        return _softmax_first(scores, calibration.temperature)
    return _sigmoid(calibration.slope * log_odds_first(scores) + calibration.intercept)


def answer_probabilities(
    scores: Sequence[float], calibration: Calibration | None = None, others: Sequence[float] = ()
) -> list[float]:
    """The probability of each of one question's answers (their `scores`); `others` compete but are not answers.

    `others` is a v2 model's "no answer" candidate. Without a calibration: the plain softmax.
    """
    values = np.asarray([*scores, *others], dtype=np.float64)
    if not len(scores):
        return []
    rows = np.stack([np.concatenate([values[i : i + 1], np.delete(values, i)]) for i in range(len(scores))])
    return first_probability(rows, calibration).tolist()


# ------------------------------------------------------------------ measuring


def expected_calibration_error(confidence: Sequence[float], right: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by each bin's share of answers.

    1.0 falls into the last bin. Within a bin |mean(right) - mean(confidence)| * count / n is
    |sum(right - confidence)| / n, which is what is summed.
    """
    confidence, right = np.asarray(confidence, dtype=np.float64), np.asarray(right, dtype=np.float64)
    if not len(confidence):
        raise ValueError("No answers to measure.")
    index = np.minimum((np.clip(confidence, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    gaps = np.bincount(index, weights=right - confidence, minlength=bins)
    return float(np.abs(gaps).sum() / len(confidence))


def coverage_thresholds(confidence: Sequence[float]) -> list[float]:
    """COVERAGE_THRESHOLDS and the confidences (rounded down to 3 decimals) answering about COVERAGE_SHARES."""
    confidence = np.asarray(confidence, dtype=np.float64)
    quantiles = np.quantile(confidence, [1.0 - share for share in COVERAGE_SHARES]) if len(confidence) else []
    return sorted({*COVERAGE_THRESHOLDS, *(math.floor(1000 * q) / 1000 for q in quantiles)})


def risk_coverage(
    confidence: Sequence[float],
    right: Sequence[bool],
    f1: Sequence[float] | None = None,
    thresholds: Sequence[float] | None = None,
) -> list[dict]:
    """Answering only at a confidence >= c, per c: how many questions get their answer, and how good those are.

    Rows: confidence, answered, coverage (share of questions), accuracy (share right) and
    f1 (mean SQuAD F1 in percent, when `f1` is given) of the answered ones (None: none answered).
    Default thresholds: `coverage_thresholds`.
    """
    confidence, right = np.asarray(confidence, dtype=np.float64), np.asarray(right, dtype=bool)
    thresholds = coverage_thresholds(confidence) if thresholds is None else thresholds
    rows = []
    for threshold in thresholds:
        answered = confidence >= threshold
        count = int(answered.sum())
        row = {"confidence": float(threshold), "answered": count, "coverage": count / max(len(confidence), 1)}
        row["accuracy"] = float(right[answered].mean()) if count else None
        if f1 is not None:
            row["f1"] = 100.0 * float(np.asarray(f1, dtype=np.float64)[answered].mean()) if count else None
        rows.append(row)
    return rows


# ------------------------------------------------------------------ fitting


def _log_loss(probability: np.ndarray, right: np.ndarray) -> float:
    p = np.clip(probability, _EPSILON, 1.0 - _EPSILON)
    return float(-np.mean(np.where(right, np.log(p), np.log1p(-p))))


def fit_temperature(scores: np.ndarray, right: Sequence[bool]) -> float:
    """The temperature (0.02..50) whose softmax probability of each row's first candidate has the lowest log-loss.

    A grid over log T finds the basin (the loss need not be convex in T), golden-section
    search refines it.
    """
    scores, right = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool)

    def loss(log_t: float) -> float:
        return _log_loss(_softmax_first(scores, math.exp(log_t)), right)

    grid = np.linspace(*_LOG_TEMPERATURES, 81)
    best = int(np.argmin([loss(x) for x in grid]))
    low, high = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return math.exp((low + high) / 2.0)


def fit_platt(log_odds: Sequence[float], right: Sequence[bool]) -> tuple[float, float]:
    """(slope, intercept) of a logistic regression of `right` on `log_odds`: Newton steps on the log-loss.

    A small prior towards (1, 0), the uncalibrated softmax, keeps both finite when all
    answers are right (or wrong) or the data separate. A slope below MIN_SLOPE would rank
    answers against their scores: then the slope is MIN_SLOPE and only the intercept is fitted.
    """
    x, y = np.asarray(log_odds, dtype=np.float64), np.asarray(right, dtype=np.float64)
    slope, intercept = _newton_logistic(np.column_stack([x, np.ones_like(x)]), y, np.array([1.0, 0.0]))
    if slope >= MIN_SLOPE:
        return slope, intercept
    (intercept,) = _newton_logistic(np.ones((len(x), 1)), y, np.array([0.0]), offset=MIN_SLOPE * x)
    return MIN_SLOPE, intercept


def _newton_logistic(
    design: np.ndarray, y: np.ndarray, prior: np.ndarray, offset: float | np.ndarray = 0.0
) -> list[float]:
    """Weights minimising the mean log-loss of sigmoid(design @ w + offset) plus a small ridge towards `prior`."""

    def objective(w: np.ndarray) -> float:
        probability = _sigmoid(design @ w + offset)
        return _log_loss(probability, y.astype(bool)) + 0.5 * _PLATT_PRIOR * float(np.sum((w - prior) ** 2))

    w, current = prior.copy(), objective(prior)
    for _ in range(100):
        p = _sigmoid(design @ w + offset)
        gradient = design.T @ (p - y) / len(y) + _PLATT_PRIOR * (w - prior)
        hessian = (design.T * (p * (1.0 - p))) @ design / len(y) + _PLATT_PRIOR * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        while True:  # halve the step until the objective does not rise
            candidate = w - step
            value = objective(candidate)
            if value <= current or np.abs(step).max() < 1e-12:
                break
            step = step / 2.0
        w, improvement, current = candidate, current - value, value
        if np.abs(step).max() < 1e-9 or improvement < 1e-14:
            break
    return [float(value) for value in w]


def fit_method(method: str, scores: np.ndarray, right: np.ndarray) -> Calibration:
    """One method fitted on (questions, candidates) scores, each question's answer first."""
    if method == "temperature":
        return Calibration("temperature", temperature=fit_temperature(scores, right))
    slope, intercept = fit_platt(log_odds_first(scores), right)
    return Calibration("platt", slope=slope, intercept=intercept)


@dataclass
class CalibrationFit:
    """A fitted calibration and what it was measured on: each question's answer, right or not, and its confidences."""

    calibration: Calibration
    right: np.ndarray
    f1: np.ndarray  # 0..1
    softmax: np.ndarray  # the plain softmax probability of each answer
    confidence: np.ndarray  # its calibrated probability, out of fold
    held_out_log_loss: dict[str, float]

    def risk_coverage(self, thresholds: Sequence[float] | None = None) -> list[dict]:
        return risk_coverage(self.confidence, self.right, self.f1, thresholds)

    def report(self) -> dict:
        """What the model card shows: the calibration as qa_settings.json keeps it and the risk-coverage rows."""
        return {"calibration": self.calibration.to_json(), "risk_coverage": self.risk_coverage()}


def fit_calibration(
    scores: np.ndarray, right: Sequence[bool], f1: Sequence[float] | None = None, folds: int = FOLDS, seed: int = 0
) -> CalibrationFit:
    """Fit both methods, keep the one with the lower cross-validated log-loss (temperature on a tie), refit it on all.

    `scores`: (questions, candidates), each question's answer first, -inf padding. Folds are
    a seeded random split of the questions. ece_after is that of the out-of-fold
    probabilities of the kept method.
    """
    scores, right = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool)
    n = len(right)
    folds = max(2, min(folds, n))
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    held_out = {method: np.zeros(n) for method in CALIBRATION_METHODS}
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        for method in CALIBRATION_METHODS:
            held_out[method][test] = first_probability(scores[test], fit_method(method, scores[train], right[train]))
    losses = {method: _log_loss(held_out[method], right) for method in CALIBRATION_METHODS}
    method = min(CALIBRATION_METHODS, key=lambda name: losses[name])  # min keeps the first (temperature) on a tie
    softmax = first_probability(scores)
    selection = (
        f"{folds}-fold cross-validated log-loss on {n} validation answers: "
        + ", ".join(f"{name} {loss:.4f}" for name, loss in losses.items())
        + f"; right = SQuAD F1 >= {RIGHT_F1}"
    )
    calibration = replace(
        fit_method(method, scores, right),
        fitted_on=n,
        ece_before=round(expected_calibration_error(softmax, right), 4),
        ece_after=round(expected_calibration_error(held_out[method], right), 4),
        selection=selection,
    )
    f1 = np.asarray(f1, dtype=np.float64) if f1 is not None else right.astype(np.float64)
    return CalibrationFit(calibration, right, f1, softmax, held_out[method], losses)


# ------------------------------------------------------------------ from decoded predictions


@dataclass
class QuestionCandidates:
    """The questions that have an answer to be confident about: their prediction and candidates (answer first)."""

    ids: list[str]
    predictions: list[str]  # at the settings' threshold; "" is a v2 model's "no answer"
    scores: np.ndarray  # (questions, candidates), -inf padding


def question_candidates(decoded: Decoded, settings: QASettings) -> QuestionCandidates:
    """Each question's folded n-best spans (and v2 "no answer" at its null score), its prediction first.

    The prediction is re-derived at settings.null_score_diff_threshold (the threshold the model
    is saved with may differ from the one decoding ran at). Questions without any span have
    no confidence to give and are left out.
    """
    ids, predictions, rows = [], [], []
    threshold = settings.null_score_diff_threshold
    for qid, nbest in decoded.nbest.items():
        spans = [entry for entry in nbest if entry["start_char"] is not None]
        if not spans:
            continue
        kept = fold_overlapping([(0, entry["start_char"], entry["end_char"]) for entry in spans])
        span_scores = [spans[i]["score"] for i in kept]
        null = next((entry for entry in nbest if entry["start_char"] is None), None)
        if settings.version_2_with_negative and null is not None:
            no_answer = null["score"]
            answered = decoded.null_odds[qid] <= threshold  # decoding's rule: "" when null odds > threshold
            row = span_scores + [no_answer] if answered else [no_answer] + span_scores
            prediction = spans[0]["text"] if answered else ""
        else:
            row, prediction = span_scores, spans[0]["text"]
        ids.append(qid)
        predictions.append(prediction)
        rows.append(row)
    width = max((len(row) for row in rows), default=1)
    scores = np.full((len(rows), width), -np.inf)
    for index, row in enumerate(rows):
        scores[index, : len(row)] = row
    return QuestionCandidates(ids, predictions, scores)


def confidences(decoded: Decoded, settings: QASettings, calibration: Calibration | None = None) -> dict[str, float]:
    """The probability of each question's prediction (calibrated when a calibration is given), by question id."""
    candidates = question_candidates(decoded, settings)
    if not candidates.ids:
        return {}
    return dict(zip(candidates.ids, first_probability(candidates.scores, calibration).tolist()))


def rightness(candidates: QuestionCandidates, gold: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(F1 0..1, right) of each question's prediction against its gold texts (an empty list: unanswerable)."""
    f1 = np.array([answer_f1(prediction, gold[qid]) for qid, prediction in zip(candidates.ids, candidates.predictions)])
    return f1, f1 >= RIGHT_F1


def calibrate(decoded: Decoded, gold: dict[str, list[str]], settings: QASettings) -> CalibrationFit | None:
    """The calibration of a model's answer confidence, from its validation predictions; None with too few questions."""
    candidates = question_candidates(decoded, settings)
    if len(candidates.ids) < MIN_QUESTIONS:
        logger.warning(
            "Answer confidence not calibrated: %d validation questions with an answer, %d needed.",
            len(candidates.ids),
            MIN_QUESTIONS,
        )
        return None
    f1, right = rightness(candidates, gold)
    return fit_calibration(candidates.scores, right, f1)
