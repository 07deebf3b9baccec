"""Reference span decoder: the "classic" n-best algorithm written as plain per-window loops.

This is the yardstick that `slmqa.decoding.predictions.decode_predictions` (vectorised over windows) is
checked and timed against. It is written for clarity, one window, one start and one end
at a time, following the semantics stated in the docstring of `slmqa.decoding.spans.decode_spans`:

1. In every window, tokens whose offset is [-1, -1] (question, special tokens, padding)
   get start and end logit -inf; only the first len(offset_mapping) logits of a feature
   are looked at (the rest is Trainer padding).
2. Per window keep the `n_best_size` best start positions and, separately, the
   `n_best_size` best end positions by masked logit; equal logits: lower position first.
3. For every kept start and every kept end of the same window, keep the pair when both
   are context tokens, end >= start and end - start + 1 <= max_answer_length.
4. score = start logit + end logit in float64 (Python floats); over all windows keep the
   `n_best_size` best; equal scores: lower window, then lower start, then lower end first.
5. null score = the smallest CLS start + end over the windows (first such window wins
   a tie, and gives the null entry's start/end logits).

Output: a `Decoded` like the fast decoder's (predictions, nbest with softmax
probabilities, null_odds, no_valid_span, no_features), so the two can be compared field
by field. Only numpy's stable argsort is borrowed (for step 2, as the classic
implementation does per window); everything else is Python loops over Python numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Same value and meaning as slmqa.decoding.predictions.NO_SPAN_NULL_ODDS (the tests check they agree).
NO_SPAN_NULL_ODDS = 1e6
NBEST_KEYS = ("text", "probability", "score", "start_logit", "end_logit", "start_char", "end_char")


def top_positions(masked: list[float], k: int) -> list[int]:
    """Positions of the k largest values, largest first; equal values: lower position first.

    A stable sort of the negated values gives exactly that order (numpy's "stable" is a
    merge/radix sort that keeps equal keys in input order). -inf entries (masked tokens)
    sort last and are thrown away later by the context check.
    """
    order = np.argsort(-np.asarray(masked, dtype=np.float64), kind="stable")
    return [int(i) for i in order[:k]]


def _rows(table: Any, names: tuple[str, ...]) -> list[dict]:
    """The named fields of a datasets.Dataset or a sequence of dicts, one plain dict per row."""
    if hasattr(table, "column_names"):
        columns = [list(table[name]) for name in names]
        return [dict(zip(names, values)) for values in zip(*columns)]
    return [{name: row[name] for name in names} for row in table]


def window_spans(
    start_logits: list[float],
    end_logits: list[float],
    offsets: list,
    n_best_size: int,
    max_answer_length: int,
    window: int,
) -> list[tuple]:
    """All valid (score, window, start, end, start_logit, end_logit) pairs of one window."""
    in_context = [offset[0] >= 0 for offset in offsets]
    masked_start = [logit if keep else -math.inf for logit, keep in zip(start_logits, in_context)]
    masked_end = [logit if keep else -math.inf for logit, keep in zip(end_logits, in_context)]
    best_starts = top_positions(masked_start, n_best_size)
    best_ends = top_positions(masked_end, n_best_size)
    spans = []
    for start in best_starts:
        for end in best_ends:
            if not in_context[start] or not in_context[end]:
                continue
            if end < start:
                continue
            if end - start + 1 > max_answer_length:
                continue
            start_logit = start_logits[start]
            end_logit = end_logits[end]
            spans.append((start_logit + end_logit, window, start, end, start_logit, end_logit))
    return spans


def softmax_entries(entries: list[dict]) -> list[dict]:
    """Add a probability (softmax over the entries' scores) and fix the key order."""
    if not entries:
        return []
    best = max(entry["score"] for entry in entries)
    weights = [math.exp(entry["score"] - best) for entry in entries]
    total = sum(weights)
    result = []
    for entry, weight in zip(entries, weights):
        item = dict(entry, probability=weight / total)
        result.append({key: item[key] for key in NBEST_KEYS})
    return result


class ReferenceDecoded:
    """Same fields as slmqa.decoding.predictions.Decoded."""

    def __init__(self):
        self.predictions: dict[str, str] = {}
        self.nbest: dict[str, list[dict]] = {}
        self.null_odds: dict[str, float] = {}
        self.no_valid_span: list[str] = []
        self.no_features: list[str] = []


def reference_decode(
    examples: Any,
    features: Any,
    start_logits: Any,
    end_logits: Any,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> ReferenceDecoded:
    """Answer every example, one window at a time; same arguments as decode_predictions."""
    example_rows = _rows(examples, ("id", "context"))
    feature_rows = _rows(features, ("example_id", "offset_mapping", "cls_index"))
    windows_of: dict[str, list[int]] = {}
    for index, feature in enumerate(feature_rows):
        windows_of.setdefault(str(feature["example_id"]), []).append(index)

    decoded = ReferenceDecoded()
    for example in example_rows:
        example_id = str(example["id"])
        context = example["context"]
        indices = windows_of.get(example_id, [])
        if not indices:
            decoded.no_features.append(example_id)
            decoded.predictions[example_id] = ""
            decoded.nbest[example_id] = []
            decoded.null_odds[example_id] = NO_SPAN_NULL_ODDS
            continue

        spans = []
        null = None  # (score, start_logit, end_logit) of the lowest CLS score so far
        for window, index in enumerate(indices):
            offsets = feature_rows[index]["offset_mapping"]
            length = len(offsets)
            # float32 -> float64 is exact, and Python floats add in float64.
            starts = np.asarray(start_logits[index][:length], dtype=np.float64).tolist()
            ends = np.asarray(end_logits[index][:length], dtype=np.float64).tolist()
            spans.extend(window_spans(starts, ends, offsets, n_best_size, max_answer_length, window))
            cls = int(feature_rows[index]["cls_index"])
            cls_score = starts[cls] + ends[cls]
            if null is None or cls_score < null[0]:
                null = (cls_score, starts[cls], ends[cls])

        # Best score first; ties: lower window, lower start, lower end.
        spans.sort(key=lambda span: (-span[0], span[1], span[2], span[3]))
        entries = []
        for score, window, start, end, start_logit, end_logit in spans[:n_best_size]:
            offsets = feature_rows[indices[window]]["offset_mapping"]
            start_char = int(offsets[start][0])
            end_char = int(offsets[end][1])
            entries.append(
                {
                    "text": context[start_char:end_char],
                    "score": score,
                    "start_logit": start_logit,
                    "end_logit": end_logit,
                    "start_char": start_char,
                    "end_char": end_char,
                }
            )

        if entries:
            null_odds = null[0] - entries[0]["score"]
            answer = entries[0]["text"]
        else:
            decoded.no_valid_span.append(example_id)
            null_odds = NO_SPAN_NULL_ODDS
            answer = ""
        if version_2_with_negative:
            if null_odds > null_score_diff_threshold:
                answer = ""
            null_entry = {
                "text": "",
                "score": null[0],
                "start_logit": null[1],
                "end_logit": null[2],
                "start_char": None,
                "end_char": None,
            }
            # The null entry goes after every span whose score is >= its own.
            position = 0
            while position < len(entries) and entries[position]["score"] >= null_entry["score"]:
                position += 1
            entries.insert(position, null_entry)
        decoded.predictions[example_id] = answer
        decoded.nbest[example_id] = softmax_entries(entries)
        decoded.null_odds[example_id] = null_odds
    return decoded


def compare(fast: Any, reference: Any, probability_tolerance: float = 1e-9) -> dict:
    """Compare two decodings example by example.

    Everything must be equal exactly (texts, chars, scores, logits, null odds, order)
    except the softmax probabilities, which may differ in the last bits (numpy vs math
    exp and summation order) and are compared with a relative tolerance.
    Returns counts and up to 5 example ids that differ.
    """
    ids = list(reference.predictions)
    prediction_mismatches = [qid for qid in ids if fast.predictions.get(qid) != reference.predictions[qid]]
    detail_mismatches = []
    for qid in ids:
        same = fast.null_odds.get(qid) == reference.null_odds[qid] and _same_nbest(
            fast.nbest.get(qid), reference.nbest[qid], probability_tolerance
        )
        if not same:
            detail_mismatches.append(qid)
    return {
        "n_examples": len(ids),
        "same_ids_and_order": list(fast.predictions) == ids,
        "prediction_mismatches": len(prediction_mismatches),
        "nbest_or_null_odds_mismatches": len(detail_mismatches),
        "same_no_valid_span": list(fast.no_valid_span) == list(reference.no_valid_span),
        "same_no_features": list(fast.no_features) == list(reference.no_features),
        "examples": (prediction_mismatches + detail_mismatches)[:5],
    }


def _same_nbest(fast: list[dict] | None, reference: list[dict], tolerance: float) -> bool:
    if fast is None or len(fast) != len(reference):
        return False
    for a, b in zip(fast, reference):
        if list(a) != list(b):
            return False
        for key in NBEST_KEYS:
            if key == "probability":
                if not math.isclose(a[key], b[key], rel_tol=tolerance, abs_tol=1e-300):
                    return False
            elif a[key] != b[key] or type(a[key]) is not type(b[key]):
                return False
    return True
