"""SQuAD v1.1 and v2.0 scoring, the official algorithm: pure Python, no numpy or torch.

Owns `normalize_answer`, `squad_v1_scores` and `squad_v2_scores` and the metric names
they return. It follows the official evaluation scripts (evaluate-v1.1.py and
evaluate-v2.0.py with a na-prob file) function for function, so it can be checked against
them side by side: `normalize_answer` ~ normalize_answer, `_exact` ~ compute_exact,
`_f1_v2` ~ compute_f1, `_best_threshold` ~ find_best_thresh. Training and qa_predict.py
score through this module; `squad_qa_metric.py` beside it wraps it as an `evaluate` metric.
"""

from __future__ import annotations

import collections
import re
import string

# What squad_v1_scores / squad_v2_scores return that a run can select a best model by
# (the *_total counts and *_thresh values are not scores).
V1_METRICS = ("exact_match", "f1")
V2_METRICS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1")

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.

    The order matters and is the official one: punctuation goes before articles, so
    "a-n" becomes "an" and is then removed as an article.
    """
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _overlap_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """Token-bag F1; 0 when nothing overlaps (also when either side is empty)."""
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _f1_v2(gold: str, pred: str) -> float:
    """v2.0 F1: an empty answer scores 1 against an empty gold answer, 0 against anything else."""
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(pred).split()
    if not gold_tokens or not pred_tokens:
        return int(gold_tokens == pred_tokens)
    return _overlap_f1(pred_tokens, gold_tokens)


def answer_f1(prediction: str, golds: list[str]) -> float:
    """One prediction's F1 (0..1) as SQuAD v2.0 scores it: best over the gold texts; no gold text: only "" is right.

    What answer calibration calls right (slmqa.decoding.calibration), for v1 and v2 models alike.
    """
    usable = [gold for gold in golds if normalize_answer(gold)] or [""]
    return float(max(_f1_v2(gold, prediction) for gold in usable))


def _exact(gold: str, pred: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(pred))


def _check_ids(predictions: dict[str, str], references: dict[str, list[str]]) -> None:
    """A reference without a prediction would silently lower the score: refuse it."""
    if not references:
        raise ValueError("No references to score.")
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} reference ids have no prediction, e.g. {missing[:5]}")


def squad_v1_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """Exact match and F1 exactly as the official SQuAD v1.1 script computes them.

    v1.1 quirks kept on purpose: gold answers are not filtered, and F1 is 0 when no token
    overlaps, so an empty prediction against an empty gold answer has exact 1 but F1 0.
    The official script crashes on a question without gold answers; here such a question
    is scored against [""] (the pipeline only meets it when unanswerable questions are
    evaluated without --version_2_with_negative, and preprocessing warns about that).
    Prediction ids not in `references` are ignored.
    """
    _check_ids(predictions, references)
    exact_total = 0.0
    f1_total = 0.0
    for qid, golds in references.items():
        golds = list(golds) or [""]
        pred = predictions[qid]
        exact_total += max(_exact(gold, pred) for gold in golds)
        pred_tokens = normalize_answer(pred).split()
        f1_total += max(_overlap_f1(pred_tokens, normalize_answer(gold).split()) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * exact_total / total, "f1": 100.0 * f1_total / total}


def _mean_scores(exact: dict[str, float], f1: dict[str, float], ids: list[str]) -> dict:
    total = len(ids)
    return {
        "exact": 100.0 * sum(exact[qid] for qid in ids) / total,
        "f1": 100.0 * sum(f1[qid] for qid in ids) / total,
        "total": total,
    }


def _best_threshold(
    raw_scores: dict[str, float],
    predictions: dict[str, str],
    no_answer_probs: dict[str, float],
    has_answer: dict[str, bool],
) -> tuple[float, float]:
    """The official `find_best_thresh`: the threshold that would have maximised the score.

    Start from answering nothing (every unanswerable question right), then switch on
    answering in order of increasing no-answer probability: an answerable question adds
    its raw score, an unanswerable one with a non-empty prediction costs 1.
    """
    current = best = sum(1 for answerable in has_answer.values() if not answerable)
    best_thresh = 0.0
    for qid in sorted(raw_scores, key=lambda q: no_answer_probs[q]):  # stable: ties keep reference order
        if has_answer[qid]:
            current += raw_scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best = current
            best_thresh = no_answer_probs[qid]
    return 100.0 * best / len(raw_scores), float(best_thresh)


def squad_v2_scores(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    no_answer_probs: dict[str, float],
    no_answer_threshold: float = 1.0,
) -> dict:
    """SQuAD v2.0 metrics exactly as the official script computes them with a na-prob file.

    Keys: exact, f1, total, HasAns_{exact,f1,total} and NoAns_{exact,f1,total} (each only
    when that subset is non-empty), best_exact, best_exact_thresh, best_f1, best_f1_thresh.

    `exact`/`f1` count a question as "no answer" when no_answer_probs[id] > threshold; the
    best_* values search the threshold over the raw scores.

    Design: the pipeline passes each question's best non-null span as `predictions`, its
    null odds (null score minus best span score) as `no_answer_probs` and its
    `null_score_diff_threshold` as `no_answer_threshold`. Decoding nulls a prediction by
    that same rule, so `exact`/`f1` describe the written predictions exactly, while the
    best-threshold search still sees the span every question would get at a higher
    threshold; `best_f1_thresh` is directly a suggested `null_score_diff_threshold`.
    (Passing already-nulled predictions would score a nulled answerable question 0 at
    every threshold, so the search could never recommend a higher one.)

    A reference with an empty list of gold texts is unanswerable. Prediction ids not in
    `references` are ignored.
    """
    _check_ids(predictions, references)
    missing = [qid for qid in references if qid not in no_answer_probs]
    if missing:
        raise ValueError(f"{len(missing)} reference ids have no no-answer probability, e.g. {missing[:5]}")
    has_answer = {qid: bool(golds) for qid, golds in references.items()}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, golds in references.items():
        # Gold texts that normalise to nothing cannot be matched; without any, only "" is right.
        usable = [gold for gold in golds if normalize_answer(gold)] or [""]
        pred = predictions[qid]
        exact_raw[qid] = max(_exact(gold, pred) for gold in usable)
        f1_raw[qid] = max(_f1_v2(gold, pred) for gold in usable)

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {
            qid: float(not has_answer[qid]) if no_answer_probs[qid] > no_answer_threshold else score
            for qid, score in raw.items()
        }

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)
    result = _mean_scores(exact, f1, list(references))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [qid for qid, answerable in has_answer.items() if answerable == wanted]
        if subset:
            result.update({f"{prefix}_{key}": value for key, value in _mean_scores(exact, f1, subset).items()})
    for name, raw in (("best_exact", exact_raw), ("best_f1", f1_raw)):
        result[name], result[f"{name}_thresh"] = _best_threshold(raw, predictions, no_answer_probs, has_answer)
    return result
