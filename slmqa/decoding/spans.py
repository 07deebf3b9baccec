"""Span decoding inside windows: the numpy kernel that scores answer spans and the null answer.

Owns steps 1-6 of the classic algorithm (see `decode_spans`): context masking, top-k
starts and ends per window, the start/end pair grid, the n-best spans and each example's
null ("no answer") entry. It works on plain arrays; `predictions.decode_predictions` feeds
it the windows of many examples at a time and turns its entries into answers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Entries(NamedTuple):
    """n-best entries (spans or "no answer") of a chunk as flat columns, grouped by example."""

    example: np.ndarray  # index of the entry's example within the chunk
    start_char: np.ndarray
    end_char: np.ndarray
    score: np.ndarray  # float64
    start_logit: np.ndarray
    end_logit: np.ndarray
    is_null: np.ndarray  # the "no answer" entry; its chars are 0, 0 so that its text slice is ""

    def take(self, index: np.ndarray) -> Entries:
        return Entries(*(column[index] for column in self))


def no_entries() -> Entries:
    empty_int, empty_float = np.zeros(0, dtype=np.int64), np.zeros(0)
    return Entries(empty_int, empty_int, empty_int, empty_float, empty_float, empty_float, np.zeros(0, dtype=bool))


def rank_in_group(keys: np.ndarray) -> np.ndarray:
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


def decode_windows(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    cls_index: np.ndarray,
    example: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[Entries, Entries]:
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
    spans = Entries(
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
    spans = spans.take(rank_in_group(spans.example) < n_best_size)
    return spans, _null_entries(start_logits, end_logits, cls_index, example)


def _null_entries(start_logits, end_logits, cls_index, example) -> Entries:
    """Per example, the window with the lowest CLS start+end score (the first one on ties)."""
    rows = np.arange(len(cls_index))
    start = start_logits[rows, cls_index].astype(np.float64)
    end = end_logits[rows, cls_index].astype(np.float64)
    order = np.lexsort((start + end, example))  # stable: the first window wins a tie
    best = order[rank_in_group(example[order]) == 0]
    zeros = np.zeros(len(best), dtype=np.int64)
    score = start[best] + end[best]
    return Entries(example[best], zeros, zeros, score, start[best], end[best], np.ones(len(best), dtype=bool))


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


def check_sizes(n_best_size: int, max_answer_length: int) -> None:
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
    check_sizes(n_best_size, max_answer_length)
    start_logits, end_logits, offsets, cls_index = _as_windows(start_logits, end_logits, offsets, cls_index)
    windows, length = start_logits.shape
    spans, null = decode_windows(
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
