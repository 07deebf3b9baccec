"""Stage 3: turn start/end logits into answer texts, and score them like the official SQuAD scripts.

Two independent halves:

* SQuAD metrics (`normalize_answer`, `squad_v1_scores`, `squad_v2_scores`) reproduce the
  official v1.1 and v2.0 evaluation scripts number for number, so results can be compared
  with published ones.
* Span decoding (`decode_spans`, `decode_predictions`) picks the best answer span of each
  example over all of its sliding windows, vectorised with numpy over thousands of windows
  at a time.

`PostProcess` ties both together for the trainer: decode, score, write the JSON files.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import re
import string
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

# null_odds recorded for an example that has no valid span at all. It is finite so the
# JSON files stay strict JSON (json.dumps writes inf as `Infinity`), and large enough that
# any sensible threshold predicts "no answer", which is what the example gets.
NO_SPAN_NULL_ODDS = 1e6

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


# ---------------------------------------------------------------- span decoding
#
# Speed and memory (measured in bench/README.md): the windows of many examples are decoded
# together, a chunk at a time, so numpy calls are amortised over thousands of windows and
# working memory is bounded by the chunk rather than by the data set. Offsets go from Arrow
# straight into numpy (never one Python list per token); logits keep their dtype (float32
# from the Trainer) and only the few values that get scored are added in float64.

# Windows decoded together (fewer when n_best_size > 20: the pair grid has n_best_size**2
# cells per window). About 30 MB of working memory at the defaults.
CHUNK_WINDOWS = 2048
CHUNK_PAIR_CELLS = CHUNK_WINDOWS * 20 * 20


class _Entries(NamedTuple):
    """n-best entries (spans or "no answer") of a chunk as flat columns, grouped by example."""

    example: np.ndarray  # index of the entry's example within the chunk
    start_char: np.ndarray
    end_char: np.ndarray
    score: np.ndarray  # float64
    start_logit: np.ndarray
    end_logit: np.ndarray
    is_null: np.ndarray  # the "no answer" entry; its chars are 0, 0 so that its text slice is ""

    def take(self, index: np.ndarray) -> _Entries:
        return _Entries(*(column[index] for column in self))


def _no_entries() -> _Entries:
    empty_int, empty_float = np.zeros(0, dtype=np.int64), np.zeros(0)
    return _Entries(empty_int, empty_int, empty_int, empty_float, empty_float, empty_float, np.zeros(0, dtype=bool))


def _rank_in_group(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    return np.arange(len(keys)) - np.searchsorted(keys, keys)


def _top_k_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the positions of the k largest values, in ascending position order.

    Equal values: lower positions win, i.e. the set of the first k of a stable descending
    argsort (the documented tie rule). It is found from each row's k-th largest value,
    which a plain np.sort gives (vectorised; a stable argsort of every row is ~40x slower);
    only rows where that value also occurs below the cut need a pick in position order.
    NaN (a diverged model) ranks like -inf, so that decoding still finishes.
    """
    rows, length = values.shape
    if k >= length:
        return np.broadcast_to(np.arange(length), (rows, length))
    ordered = np.sort(values, axis=1)
    if np.isnan(ordered[:, -1]).any():  # np.sort puts NaN last
        return _top_k_positions(np.where(np.isnan(values), -np.inf, values), k)
    kth = ordered[:, length - k, None]
    chosen = values >= kth
    tied = np.flatnonzero(ordered[:, length - k - 1] == kth[:, 0])
    if len(tied):
        chosen[tied] = _first_k_in_position_order(values[tied], kth[tied], k)
    return (np.flatnonzero(chosen) % length).reshape(rows, k)


def _first_k_in_position_order(values: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Rows whose k-th largest value repeats: every larger value, then the lowest positions equal to it."""
    larger = values > kth
    equal = values == kth
    need = k - larger.sum(axis=1, keepdims=True)
    return larger | (equal & (np.cumsum(equal, axis=1) <= need))


def _padded(token_values: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Per-token values of consecutive windows as a (windows, width) array; 0/False past a window's end."""
    if np.all(lengths == width):
        return token_values.reshape(len(lengths), width)
    grid = np.zeros((len(lengths), width), dtype=token_values.dtype)
    grid[np.arange(width) < lengths[:, None]] = token_values
    return grid


def _decode_windows(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    cls_index: np.ndarray,
    example: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[_Entries, _Entries]:
    """Steps 1-6 of `decode_spans` for the windows of several examples at once.

    Window i has lengths[i] tokens, whose offsets are the next lengths[i] rows of `offsets`
    (tokens, 2); its logits are row i of the (windows, width) float arrays, read only up to
    its length. example[i] is the index of its example: non-decreasing, an example's
    windows in their order. Returns the spans (per example best first, at most
    n_best_size) and the null entry of every example.
    """
    windows, width = start_logits.shape
    first_token = np.cumsum(lengths) - lengths
    context = _padded(offsets[:, 0] >= 0, lengths, width)
    masked_starts = np.where(context, start_logits, -np.inf)
    masked_ends = np.where(context, end_logits, -np.inf)
    k = min(n_best_size, width)
    top_starts = _top_k_positions(masked_starts, k)
    top_ends = _top_k_positions(masked_ends, k)
    # float64 from here on; a pair with a non-context token scores -inf and is no candidate.
    start_scores = np.take_along_axis(masked_starts, top_starts, axis=1).astype(np.float64)
    end_scores = np.take_along_axis(masked_ends, top_ends, axis=1).astype(np.float64)
    # The (window, start, end) grid; its cells are in (start, end) position order.
    starts, ends = top_starts[:, :, None], top_ends[:, None, :]
    fits = (ends >= starts) & (ends < starts + max_answer_length)
    pair_scores = np.where(fits, start_scores[:, :, None] + end_scores[:, None, :], -np.inf).reshape(windows, k * k)
    cells = _top_k_positions(pair_scores, min(n_best_size, k * k))
    window, column = np.nonzero(np.take_along_axis(pair_scores, cells, axis=1) > -np.inf)
    start, end = np.divmod(cells[window, column], k)
    start_logit, end_logit = start_scores[window, start], end_scores[window, end]
    spans = _Entries(
        example=example[window],
        start_char=offsets[first_token[window] + top_starts[window, start], 0],
        end_char=offsets[first_token[window] + top_ends[window, end], 1],
        score=start_logit + end_logit,
        start_logit=start_logit,
        end_logit=end_logit,
        is_null=np.zeros(len(window), dtype=bool),
    )
    # Stable sort: equal scores keep their (window, start, end) order.
    spans = spans.take(np.lexsort((-spans.score, spans.example)))
    spans = spans.take(_rank_in_group(spans.example) < n_best_size)
    return spans, _null_entries(start_logits, end_logits, cls_index, example)


def _null_entries(start_logits, end_logits, cls_index, example) -> _Entries:
    """Per example, the window with the lowest CLS start+end score (the first one on ties)."""
    rows = np.arange(len(cls_index))
    start = start_logits[rows, cls_index].astype(np.float64)
    end = end_logits[rows, cls_index].astype(np.float64)
    order = np.lexsort((start + end, example))  # stable: the first window wins a tie
    best = order[_rank_in_group(example[order]) == 0]
    zeros = np.zeros(len(best), dtype=np.int64)
    score = start[best] + end[best]
    return _Entries(example[best], zeros, zeros, score, start[best], end[best], np.ones(len(best), dtype=bool))


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


def _check_sizes(n_best_size: int, max_answer_length: int) -> None:
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size and max_answer_length must be >= 1; got {n_best_size}, {max_answer_length}.")


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
       start position, then lower end position first). Logits are taken to be finite, as
       a model's are: a pair scoring -inf or NaN is no candidate.
    5. Each candidate is {"text": None (the caller fills it), "start_char": offsets[w, s, 0],
       "end_char": offsets[w, e, 1], "score", "start_logit", "end_logit"} (python types).
    6. null score = min over windows of start_logits[w, cls_index[w]] + end_logits[w, cls_index[w]].

    Returns (candidates best first, possibly empty; null score). `decode_predictions` runs
    the same steps for many examples at once.
    """
    _check_sizes(n_best_size, max_answer_length)
    start_logits, end_logits, offsets, cls_index = _as_windows(start_logits, end_logits, offsets, cls_index)
    windows, length = start_logits.shape
    spans, null = _decode_windows(
        start_logits,
        end_logits,
        offsets.reshape(-1, 2),
        np.full(windows, length),
        cls_index,
        np.zeros(windows, dtype=np.int64),
        n_best_size,
        max_answer_length,
    )
    columns = (spans.start_char, spans.end_char, spans.score, spans.start_logit, spans.end_logit)
    candidates = [
        {"text": None, "start_char": s, "end_char": e, "score": score, "start_logit": a, "end_logit": b}
        for s, e, score, a, b in zip(*(column.tolist() for column in columns))
    ]
    return candidates, float(null.score[0])


@dataclass
class Decoded:
    """Everything decoding produced, keyed by example id (in the examples' order)."""

    predictions: dict[str, str] = field(default_factory=dict)
    # The best span whatever the null score ("" only without any valid span). SQuAD v2
    # scoring needs it: the threshold search must see what a higher threshold would answer.
    span_predictions: dict[str, str] = field(default_factory=dict)
    # Best first: text, probability, score, start_logit, end_logit, start_char, end_char.
    # For SQuAD v2 the "no answer" entry (text "", chars None) sits at its score position.
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    # null score - best span score; NO_SPAN_NULL_ODDS when there is no span.
    null_odds: dict[str, float] = field(default_factory=dict)
    # Examples that had windows but not a single valid span (predicted "").
    no_valid_span: list[str] = field(default_factory=list)
    # Examples without any window (predicted ""); disjoint from no_valid_span.
    no_features: list[str] = field(default_factory=list)


class _Table:
    """Named columns of a datasets.Dataset or of a sequence of dicts, read a range of rows at a time.

    A Dataset is read through Arrow (zero-copy slices, an indices mapping respected), never
    formatted row by row: that took most of the decoding time and memory before.
    """

    def __init__(self, rows: Any, names: list[str]):
        self.rows = rows
        self.arrow = None
        if hasattr(rows, "column_names"):
            missing = [name for name in names if name not in rows.column_names]
            if missing:
                raise KeyError(f"Missing column '{missing[0]}' (have {rows.column_names}).")
            self.arrow = rows.select_columns(names).with_format("arrow")

    def pylist(self, name: str, first: int = 0, last: int | None = None) -> list:
        """Rows first..last-1 of one column as a Python list."""
        if self.arrow is not None:
            return self.arrow[first:last].column(name).to_pylist()
        return [row[name] for row in self.rows[first:last]]

    def offsets(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The offset_mapping of the given rows as one (tokens, 2) int64 array, and each row's token count."""
        if self.arrow is None:
            windows = [self.rows[row]["offset_mapping"] for row in rows.tolist()]
            lengths = np.fromiter(map(len, windows), dtype=np.int64, count=len(windows))
            flat = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(windows)), dtype=np.int64)
        else:
            consecutive = rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) > 0)
            key = slice(int(rows[0]), int(rows[-1]) + 1) if consecutive else rows
            column = self.arrow[key].column("offset_mapping").combine_chunks()
            lengths = np.asarray(pc.list_value_length(column), dtype=np.int64)
            flat = np.asarray(column.flatten().flatten(), dtype=np.int64)
        if len(flat) != 2 * lengths.sum():
            raise ValueError("offset_mapping entries must be [start_char, end_char] pairs.")
        return flat.reshape(-1, 2), lengths


def _logit_block(logits: Any, rows: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """The logits of the given features as a (windows, width) float array (row i read up to lengths[i])."""
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        if logits.shape[1] < width:
            short = int(np.argmax(lengths > logits.shape[1]))
            raise ValueError(f"Feature {rows[short]} has {lengths[short]} tokens but only {logits.shape[1]} logits.")
        block = logits[rows, :width]
        return block if block.dtype.kind == "f" else block.astype(np.float64)
    block = np.full((len(rows), width), -np.inf)
    for i, (row, length) in enumerate(zip(rows.tolist(), lengths.tolist())):
        values = np.asarray(logits[row], dtype=np.float64)
        if len(values) < length:
            raise ValueError(f"Feature {row} has {length} tokens but only {len(values)} logits.")
        block[i, :length] = values[:length]
    return block


def _decode_chunk(
    features: _Table,
    rows: np.ndarray,
    example: np.ndarray,
    start_logits: Any,
    end_logits: Any,
    cls_index: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[_Entries, _Entries]:
    """Read the offsets and logits of the given features (example[i] owns rows[i]) and decode them together."""
    if len(rows) == 0:
        return _no_entries(), _no_entries()
    offsets, lengths = features.offsets(rows)
    cls = cls_index[rows]
    outside = np.flatnonzero((cls < 0) | (cls >= lengths))
    if len(outside):
        bad = outside[0]
        raise ValueError(f"Feature {rows[bad]}: cls_index {cls[bad]} outside its {lengths[bad]} tokens.")
    width = int(lengths.max())
    starts = _logit_block(start_logits, rows, lengths, width)
    ends = _logit_block(end_logits, rows, lengths, width)
    return _decode_windows(starts, ends, offsets, lengths, cls, example, n_best_size, max_answer_length)


def _chunks(window_counts: np.ndarray, chunk_windows: int) -> list[tuple[int, int]]:
    """Consecutive ranges of examples with at most chunk_windows windows (an example is never split)."""
    ranges, first, size = [], 0, 0
    for index, count in enumerate(window_counts.tolist()):
        if size and size + count > chunk_windows:
            ranges.append((first, index))
            first, size = index, 0
        size += count
    ranges.append((first, len(window_counts)))
    return ranges


def _group_softmax(scores: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Softmax within consecutive groups of `sizes` scores, each sorted best first (its first score is its max)."""
    if len(scores) == 0:
        return scores
    sizes = sizes[sizes > 0]
    firsts = np.cumsum(sizes) - sizes
    weights = np.exp(scores - np.repeat(scores[firsts], sizes))
    return weights / np.repeat(np.add.reduceat(weights, firsts), sizes)


def _with_null(spans: _Entries, nulls: _Entries, n_examples: int) -> _Entries:
    """Spans and null entries in n-best order: a null entry goes after every span of its example scoring >= it.

    Spans are grouped by example and best first, so each null entry's place is its
    example's first span plus the number of its spans scoring >= it (np.insert, no sort).
    """
    null_score = np.zeros(n_examples)
    null_score[nulls.example] = nulls.score
    ahead = np.bincount(spans.example, weights=spans.score >= null_score[spans.example], minlength=n_examples)
    places = np.searchsorted(spans.example, nulls.example) + ahead[nulls.example].astype(np.int64)
    return _Entries(*(np.insert(column, places, null_column) for column, null_column in zip(spans, nulls)))


def _nbest_lists(entries: _Entries, contexts: list[str]) -> list[list[dict]]:
    """The n-best lists of a chunk's examples, built from plain Python values (numpy scalars are slow)."""
    sizes = np.bincount(entries.example, minlength=len(contexts))
    columns = zip(
        entries.example.tolist(),
        _group_softmax(entries.score, sizes).tolist(),
        entries.score.tolist(),
        entries.start_logit.tolist(),
        entries.end_logit.tolist(),
        entries.start_char.tolist(),
        entries.end_char.tolist(),
    )
    flat = [
        {
            "text": contexts[e][c:d],
            "probability": p,
            "score": s,
            "start_logit": a,
            "end_logit": b,
            "start_char": c,
            "end_char": d,
        }
        for e, p, s, a, b, c, d in columns
    ]
    for null in np.flatnonzero(entries.is_null).tolist():
        flat[null]["start_char"] = flat[null]["end_char"] = None  # its text, context[0:0], is ""
    ends = np.cumsum(sizes).tolist()
    return [flat[first:last] for first, last in zip([0] + ends[:-1], ends)]


def _collect(
    decoded: Decoded,
    ids: list[str],
    contexts: list[str],
    spans: _Entries,
    nulls: _Entries,
    version_2_with_negative: bool,
    null_score_diff_threshold: float,
) -> None:
    """Add one chunk's predictions, n-best lists, null odds and flags to `decoded`, in example order."""
    n = len(ids)
    best = spans.take(_rank_in_group(spans.example) == 0)
    has_span, has_windows = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    has_span[best.example], has_windows[nulls.example] = True, True
    null_score, best_score = np.zeros(n), np.zeros(n)
    null_score[nulls.example], best_score[best.example] = nulls.score, best.score
    null_odds = np.where(has_span, null_score - best_score, NO_SPAN_NULL_ODDS).tolist()
    answers = [""] * n
    for index, start, end in zip(best.example.tolist(), best.start_char.tolist(), best.end_char.tolist()):
        answers[index] = contexts[index][start:end]
    entries = spans
    decoded.span_predictions.update(zip(ids, answers))
    if version_2_with_negative:
        answers = ["" if odds > null_score_diff_threshold else text for text, odds in zip(answers, null_odds)]
        entries = _with_null(spans, nulls, n)
    decoded.predictions.update(zip(ids, answers))
    decoded.nbest.update(zip(ids, _nbest_lists(entries, contexts)))
    decoded.null_odds.update(zip(ids, null_odds))
    for qid, windows, span in zip(ids, has_windows.tolist(), has_span.tolist()):
        if not windows:
            decoded.no_features.append(qid)
        elif not span:
            decoded.no_valid_span.append(qid)


def _example_of_features(example_ids: list[str], feature_example_ids: list[str]) -> np.ndarray:
    """Each feature's example position; unknown or repeated ids are errors."""
    position = {qid: index for index, qid in enumerate(example_ids)}
    if len(position) != len(example_ids):
        repeated = [qid for qid, count in collections.Counter(example_ids).items() if count > 1]
        raise ValueError(f"{len(repeated)} example ids occur more than once, e.g. {repeated[:5]}")
    unknown = list(dict.fromkeys(qid for qid in feature_example_ids if qid not in position))
    if unknown:
        raise ValueError(f"Features refer to {len(unknown)} unknown example ids, e.g. {unknown[:5]}")
    return np.fromiter(map(position.__getitem__, feature_example_ids), dtype=np.int64, count=len(feature_example_ids))


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

    Same results as `decode_spans` example by example, but whole chunks of examples are
    decoded at once (see the top of this section).
    """
    _check_sizes(n_best_size, max_answer_length)
    example_table = _Table(examples, ["id", "context"])
    feature_table = _Table(features, ["example_id", "offset_mapping", "cls_index"])
    example_ids = [str(qid) for qid in example_table.pylist("id")]
    feature_example_ids = [str(qid) for qid in feature_table.pylist("example_id")]
    n_features = len(feature_example_ids)
    if len(start_logits) != n_features or len(end_logits) != n_features:
        raise ValueError(f"{n_features} features but {len(start_logits)} start / {len(end_logits)} end logit rows.")
    example_of_feature = _example_of_features(example_ids, feature_example_ids)
    cls_index = np.asarray(feature_table.pylist("cls_index"), dtype=np.int64)
    # Features grouped by example, each example's windows in their order.
    feature_order = np.argsort(example_of_feature, kind="stable")
    window_counts = np.bincount(example_of_feature, minlength=len(example_ids))
    first_window = np.concatenate([[0], np.cumsum(window_counts)])

    decoded = Decoded()
    chunk_windows = max(1, min(CHUNK_WINDOWS, CHUNK_PAIR_CELLS // n_best_size**2))
    for first, last in _chunks(window_counts, chunk_windows):
        rows = feature_order[first_window[first] : first_window[last]]
        example = example_of_feature[rows] - first
        spans, nulls = _decode_chunk(
            feature_table, rows, example, start_logits, end_logits, cls_index, n_best_size, max_answer_length
        )
        contexts = example_table.pylist("context", first, last)
        ids = example_ids[first:last]
        _collect(decoded, ids, contexts, spans, nulls, version_2_with_negative, null_score_diff_threshold)

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
        answers = _Table(examples, ["answers"]).pylist("answers")
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
        table = _Table(examples, ["id", "answers"])
        ids, answers = table.pylist("id"), table.pylist("answers")
        return {str(qid): list(answer["text"]) for qid, answer in zip(ids, answers)}

    def score(self, decoded: Decoded, examples: Any) -> dict:
        """SQuAD v2 metrics (null odds against null_score_diff_threshold) or v1 metrics."""
        references = self.references(examples)
        if self.version_2_with_negative:
            # Best spans + null odds + the threshold in use: exact/f1 are those of the written
            # predictions (a span whose odds exceed the threshold counts as ""), and the
            # best-threshold search can also look above the threshold in use.
            return squad_v2_scores(
                decoded.span_predictions, references, decoded.null_odds, self.null_score_diff_threshold
            )
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
        self, examples: Any, features: Any, predictions: Sequence, prefix: str = "eval", score: bool | None = None
    ) -> tuple[Decoded, dict]:
        """Decode, score, write.

        score=None scores only examples that carry gold answers (a test file may have none);
        evaluation passes True, since its file is labelled by definition, also when (SQuAD
        v2) every one of its questions is unanswerable and so has no answer text.
        """
        decoded = self.decode(examples, features, predictions)
        if score is None:
            score = _has_gold_answers(examples)
        metrics = self.score(decoded, examples) if score else {}
        self.write(decoded, prefix)
        return decoded, metrics
