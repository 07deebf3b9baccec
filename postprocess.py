"""Stage 3: turn start/end logits into answer texts, and score them like the official SQuAD scripts.

Two independent halves:

* SQuAD metrics (`normalize_answer`, `squad_v1_scores`, `squad_v2_scores`) reproduce the
  official v1.1 and v2.0 evaluation scripts number for number, so results can be compared
  with published ones.
* Span decoding (`decode_spans`, `decode_predictions`) picks the best answer span of each
  example over all of its sliding windows, vectorised with numpy.

`PostProcess` ties both together for the trainer: decode, score, write the JSON files.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import string
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

# null_odds recorded for an example that has no valid span at all. It is finite so the
# JSON files stay strict JSON (json.dumps writes inf as `Infinity`), and large enough that
# any sensible threshold predicts "no answer", which is what the example gets.
NO_SPAN_NULL_ODDS = 1e6
# A progress bar for fewer examples than this is noise in the logs.
PROGRESS_MIN_EXAMPLES = 1000

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


# ---------------------------------------------------------------- SQuAD metrics


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

    Design: the pipeline passes its null odds (null score minus best span score) as
    `no_answer_probs` and its `null_score_diff_threshold` as `no_answer_threshold`. The
    predictions were decoded with that same rule, so `exact`/`f1` describe the predictions
    exactly as written, and `best_f1_thresh` is directly a suggested
    `null_score_diff_threshold`.

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


# ---------------------------------------------------------------- span decoding


def _span_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> list[dict]:
    """Steps 1-5 of `decode_spans` (inputs already float64 / int64 arrays)."""
    windows, length = start_logits.shape
    in_context = offsets[..., 0] >= 0
    masked_start = np.where(in_context, start_logits, -np.inf)
    masked_end = np.where(in_context, end_logits, -np.inf)
    k = min(n_best_size, length)
    # Stable sort of the negated logits: descending, lower position first on ties.
    top_starts = np.argsort(-masked_start, axis=1, kind="stable")[:, :k]
    top_ends = np.argsort(-masked_end, axis=1, kind="stable")[:, :k]
    shape = (windows, k, k)
    window = np.broadcast_to(np.arange(windows)[:, None, None], shape)
    start = np.broadcast_to(top_starts[:, :, None], shape)
    end = np.broadcast_to(top_ends[:, None, :], shape)
    valid = (
        in_context[window, start]
        & in_context[window, end]
        & (end >= start)
        & (end - start + 1 <= max_answer_length)
    )
    window, start, end = window[valid], start[valid], end[valid]
    start_scores = start_logits[window, start]
    end_scores = end_logits[window, end]
    scores = start_scores + end_scores
    # lexsort: the last key is the primary one.
    order = np.lexsort((end, start, window, -scores))[:n_best_size]
    return [
        {
            "text": None,
            "start_char": int(offsets[window[i], start[i], 0]),
            "end_char": int(offsets[window[i], end[i], 1]),
            "score": float(scores[i]),
            "start_logit": float(start_scores[i]),
            "end_logit": float(end_scores[i]),
        }
        for i in order
    ]


def _null_candidate(start_logits: np.ndarray, end_logits: np.ndarray, cls_index: np.ndarray) -> dict:
    """The "no answer" entry: the window whose CLS start+end score is lowest (the classic choice)."""
    rows = np.arange(len(cls_index))
    null_starts = start_logits[rows, cls_index]
    null_ends = end_logits[rows, cls_index]
    best = int(np.argmin(null_starts + null_ends))
    return {
        "text": "",
        "start_char": None,
        "end_char": None,
        "score": float(null_starts[best] + null_ends[best]),
        "start_logit": float(null_starts[best]),
        "end_logit": float(null_ends[best]),
    }


def _as_windows(start_logits, end_logits, offsets, cls_index) -> tuple[np.ndarray, ...]:
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    cls_index = np.asarray(cls_index, dtype=np.int64)
    if start_logits.ndim != 2 or start_logits.shape[0] == 0:
        raise ValueError(f"Logits must have shape (windows >= 1, length); got {start_logits.shape}.")
    if end_logits.shape != start_logits.shape or offsets.shape != start_logits.shape + (2,):
        raise ValueError(
            f"Shapes disagree: start {start_logits.shape}, end {end_logits.shape}, offsets {offsets.shape}."
        )
    if cls_index.shape != start_logits.shape[:1]:
        raise ValueError(f"cls_index must have shape ({start_logits.shape[0]},); got {cls_index.shape}.")
    return start_logits, end_logits, offsets, cls_index


def decode_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    cls_index: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[list[dict], float]:
    """The best answer spans of ONE example over its W windows ("classic" algorithm).

    Inputs: `start_logits`, `end_logits` of shape (W, L); `offsets` int (W, L, 2), with -1
    for tokens outside the context (question, special tokens, padding: pad shorter windows
    with offsets -1, their logits are then never used); `cls_index` (W,).

    1. In each window, positions whose offsets are -1 get start and end logit -inf.
    2. In each window take the top `n_best_size` start positions and, separately, the top
       `n_best_size` end positions by masked logit (ties: lower position first).
    3. Pair every kept start with every kept end of the same window; keep a pair when both
       positions are context tokens, end >= start and end - start + 1 <= max_answer_length.
       (Only the top-k starts/ends are paired: a valid span whose start or end is not
       among them is never considered, as in the classic algorithm.)
    4. score = start_logit + end_logit (computed in float64, exact for float32 logits);
       keep the `n_best_size` best pairs over all windows (ties: lower window, then lower
       start position, then lower end position first).
    5. Each candidate is {"text": None (the caller fills it), "start_char": offsets[w, s, 0],
       "end_char": offsets[w, e, 1], "score", "start_logit", "end_logit"} (python types).
    6. null score = min over windows of start_logits[w, cls_index[w]] + end_logits[w, cls_index[w]].

    Returns (candidates best first, possibly empty; null score).
    """
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size and max_answer_length must be >= 1; got {n_best_size}, {max_answer_length}.")
    start_logits, end_logits, offsets, cls_index = _as_windows(start_logits, end_logits, offsets, cls_index)
    candidates = _span_candidates(start_logits, end_logits, offsets, n_best_size, max_answer_length)
    return candidates, _null_candidate(start_logits, end_logits, cls_index)["score"]


@dataclass
class Decoded:
    """Everything decoding produced, keyed by example id (in the examples' order)."""

    predictions: dict[str, str] = field(default_factory=dict)
    # Best first: text, probability, score, start_logit, end_logit, start_char, end_char.
    # For SQuAD v2 the "no answer" entry (text "", chars None) sits at its score position.
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    # null score - best span score; NO_SPAN_NULL_ODDS when there is no span.
    null_odds: dict[str, float] = field(default_factory=dict)
    # Examples that had windows but not a single valid span (predicted "").
    no_valid_span: list[str] = field(default_factory=list)
    # Examples without any window (predicted ""); disjoint from no_valid_span.
    no_features: list[str] = field(default_factory=list)


def _column(rows: Any, name: str) -> list:
    """One column of a datasets.Dataset or of a sequence of dicts, as a list."""
    if hasattr(rows, "column_names"):
        if name not in rows.column_names:
            raise KeyError(f"Missing column '{name}' (have {rows.column_names}).")
        return list(rows[name])
    return [row[name] for row in rows]


def _stack_windows(
    indices: list[int],
    start_logits: Any,
    end_logits: Any,
    feature_offsets: list,
    feature_cls: list,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (W, L) arrays of one example; only the first L_i logits of feature i are used."""
    lengths = [len(feature_offsets[i]) for i in indices]
    shape = (len(indices), max(lengths))
    starts = np.full(shape, -np.inf)
    ends = np.full(shape, -np.inf)
    offsets = np.full(shape + (2,), -1, dtype=np.int64)
    cls_index = np.empty(len(indices), dtype=np.int64)
    for row, (index, length) in enumerate(zip(indices, lengths)):
        feature_starts = np.asarray(start_logits[index], dtype=np.float64)
        feature_ends = np.asarray(end_logits[index], dtype=np.float64)
        if min(len(feature_starts), len(feature_ends)) < length:
            raise ValueError(
                f"Feature {index} has {length} tokens but only {min(len(feature_starts), len(feature_ends))} logits."
            )
        if not 0 <= feature_cls[index] < length:
            raise ValueError(f"Feature {index}: cls_index {feature_cls[index]} outside its {length} tokens.")
        starts[row, :length] = feature_starts[:length]
        ends[row, :length] = feature_ends[:length]
        offsets[row, :length] = np.asarray(feature_offsets[index], dtype=np.int64).reshape(length, 2)
        cls_index[row] = feature_cls[index]
    return starts, ends, offsets, cls_index


def _with_probabilities(entries: list[dict]) -> list[dict]:
    """Softmax over the n-best scores, so the entries read as a distribution."""
    if not entries:
        return []
    scores = np.array([entry["score"] for entry in entries])
    weights = np.exp(scores - scores.max())
    probabilities = weights / weights.sum()
    keys = ("text", "probability", "score", "start_logit", "end_logit", "start_char", "end_char")
    return [
        {key: float(probability) if key == "probability" else entry[key] for key in keys}
        for entry, probability in zip(entries, probabilities)
    ]


def decode_predictions(
    examples: Any,
    features: Any,
    start_logits: np.ndarray | Sequence[np.ndarray],
    end_logits: np.ndarray | Sequence[np.ndarray],
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> Decoded:
    """Answer every example from the logits of its windows (features).

    `examples` / `features`: datasets.Dataset or sequences of dicts, as preprocess.py makes
    them (example `id`, `context`; feature `example_id`, `offset_mapping` with [-1, -1]
    outside the context, `cls_index`). `start_logits` / `end_logits`: one row per
    feature, either a (n_features, L_max) array padded by the Trainer (padding ignored) or
    a list of 1-D arrays.

    Without version_2_with_negative the best span is the answer. With it, the answer is ""
    when null score - best span score > null_score_diff_threshold, and the n-best list
    also holds the "no answer" entry. Every example gets exactly one prediction; examples
    without windows or without any valid span get "" and are listed in the result.
    """
    example_ids = [str(qid) for qid in _column(examples, "id")]
    contexts = _column(examples, "context")
    feature_example_ids = [str(qid) for qid in _column(features, "example_id")]
    feature_offsets = _column(features, "offset_mapping")
    feature_cls = [int(c) for c in _column(features, "cls_index")]
    if len(start_logits) != len(feature_example_ids) or len(end_logits) != len(feature_example_ids):
        raise ValueError(
            f"{len(feature_example_ids)} features but {len(start_logits)} start / {len(end_logits)} end logit rows."
        )
    if len(set(example_ids)) != len(example_ids):
        repeated = [qid for qid, count in collections.Counter(example_ids).items() if count > 1]
        raise ValueError(f"{len(repeated)} example ids occur more than once, e.g. {repeated[:5]}")

    known = set(example_ids)
    features_of: dict[str, list[int]] = collections.defaultdict(list)
    for index, example_id in enumerate(feature_example_ids):
        features_of[example_id].append(index)
    unknown = [qid for qid in features_of if qid not in known]
    if unknown:
        raise ValueError(f"Features refer to {len(unknown)} unknown example ids, e.g. {unknown[:5]}")

    decoded = Decoded()
    progress = tqdm(
        zip(example_ids, contexts),
        total=len(example_ids),
        desc="Decoding answers",
        disable=len(example_ids) < PROGRESS_MIN_EXAMPLES or not logger.isEnabledFor(logging.INFO),
    )
    for example_id, context in progress:
        indices = features_of.get(example_id)
        if not indices:
            decoded.no_features.append(example_id)
            decoded.predictions[example_id] = ""
            decoded.nbest[example_id] = []
            decoded.null_odds[example_id] = NO_SPAN_NULL_ODDS
            continue
        windows = _stack_windows(indices, start_logits, end_logits, feature_offsets, feature_cls)
        starts, ends, offsets, cls_index = windows
        spans = _span_candidates(starts, ends, offsets, n_best_size, max_answer_length)
        for span in spans:
            span["text"] = context[span["start_char"] : span["end_char"]]
        null = _null_candidate(starts, ends, cls_index)
        if spans:
            null_odds = null["score"] - spans[0]["score"]
            best_text = spans[0]["text"]
        else:
            decoded.no_valid_span.append(example_id)
            null_odds = NO_SPAN_NULL_ODDS
            best_text = ""
        entries = spans
        if version_2_with_negative:
            if null_odds > null_score_diff_threshold:
                best_text = ""
            # Stable sort: the null entry goes after spans with the same score.
            entries = sorted(spans + [null], key=lambda entry: -entry["score"])
        decoded.predictions[example_id] = best_text
        decoded.nbest[example_id] = _with_probabilities(entries)
        decoded.null_odds[example_id] = null_odds

    if decoded.no_features:
        logger.warning(
            "%d examples have no windows and were answered with '': %s",
            len(decoded.no_features),
            decoded.no_features[:5],
        )
    if decoded.no_valid_span:
        logger.warning(
            "%d examples have no valid answer span and were answered with '': %s",
            len(decoded.no_valid_span),
            decoded.no_valid_span[:5],
        )
    return decoded


# ---------------------------------------------------------------- trainer-facing shell


def _has_gold_answers(examples: Any) -> bool:
    """A test set without labels has no `answers` or only empty ones: nothing to score."""
    try:
        answers = _column(examples, "answers")
    except KeyError:
        return False
    return any(answer and answer.get("text") for answer in answers)


class PostProcess:
    """Decode, score and save the predictions of one evaluation or prediction run."""

    def __init__(
        self,
        n_best_size: int = 20,
        max_answer_length: int = 30,
        version_2_with_negative: bool = False,
        null_score_diff_threshold: float = 0.0,
        output_dir: str | None = None,
    ):
        if n_best_size < 1 or max_answer_length < 1:
            raise ValueError(f"n_best_size and max_answer_length must be >= 1; got {n_best_size}, {max_answer_length}.")
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.version_2_with_negative = version_2_with_negative
        self.null_score_diff_threshold = null_score_diff_threshold
        self.output_dir = output_dir

    def decode(self, examples: Any, features: Any, predictions: Sequence) -> Decoded:
        """`predictions` is (start_logits, end_logits), as the Trainer returns them; extra items are ignored."""
        if len(predictions) < 2:
            raise ValueError("predictions must be (start_logits, end_logits).")
        return decode_predictions(
            examples,
            features,
            predictions[0],
            predictions[1],
            n_best_size=self.n_best_size,
            max_answer_length=self.max_answer_length,
            version_2_with_negative=self.version_2_with_negative,
            null_score_diff_threshold=self.null_score_diff_threshold,
        )

    @staticmethod
    def references(examples: Any) -> dict[str, list[str]]:
        """Gold answer texts by example id; an empty list marks an unanswerable question."""
        ids, answers = _column(examples, "id"), _column(examples, "answers")
        return {str(qid): list(answer["text"]) for qid, answer in zip(ids, answers)}

    def score(self, decoded: Decoded, examples: Any) -> dict:
        """SQuAD v2 metrics (null odds against null_score_diff_threshold) or v1 metrics."""
        references = self.references(examples)
        if self.version_2_with_negative:
            return squad_v2_scores(decoded.predictions, references, decoded.null_odds, self.null_score_diff_threshold)
        return squad_v1_scores(decoded.predictions, references)

    def write(self, decoded: Decoded, prefix: str = "eval") -> list[str]:
        """Save predictions, n-best lists and (v2) null odds as JSON; nothing without output_dir."""
        if self.output_dir is None:
            return []
        os.makedirs(self.output_dir, exist_ok=True)
        contents = {"predictions": decoded.predictions, "nbest_predictions": decoded.nbest}
        if self.version_2_with_negative:
            contents["null_odds"] = decoded.null_odds
        paths = []
        for name, content in contents.items():
            path = os.path.join(self.output_dir, f"{prefix}_{name}.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=2, ensure_ascii=False)
            paths.append(path)
        logger.info("Saved %s", ", ".join(paths))
        return paths

    def __call__(
        self, examples: Any, features: Any, predictions: Sequence, prefix: str = "eval"
    ) -> tuple[Decoded, dict]:
        """Decode, score when the examples carry gold answers (else empty metrics), write."""
        decoded = self.decode(examples, features, predictions)
        metrics = self.score(decoded, examples) if _has_gold_answers(examples) else {}
        self.write(decoded, prefix)
        return decoded, metrics
