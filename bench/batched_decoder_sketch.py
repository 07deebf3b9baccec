"""SKETCH, not used by the pipeline: the change recommended for postprocess.decode_predictions.

bench_decoding.py showed that the current decoder is about as fast as the plain-loop
reference, because (1) with datasets.Dataset inputs, `list(features["offset_mapping"])`
turns every window's offsets into Python lists, row by row (most of the time, and memory
that grows with the data), and (2) the numpy work is done per example, so for short
documents (one window per example) ~30 small numpy calls per example cost more than the
loops they replace, and for long documents the offsets list -> array conversion per
window and a full stable argsort of every window dominate.

This sketch shows the recommended structure and that it keeps the exact semantics of
postprocess.decode_spans (it is checked against bench/reference_decoder.py):

* offsets are read from Arrow straight into numpy (no Python list per token), a chunk of
  examples (<= `chunk_windows` windows) at a time, so memory is bounded by the chunk and
  the result, not by the data set;
* all windows of a chunk are decoded together: exact top-k with the documented tie rule
  via np.partition + a threshold/cumsum pick (no full sort), pairs on a (W, k, k) grid in
  (start, end) position order, per window the n_best best pairs by the same partition
  trick, then one lexsort per chunk orders (example, -score, window, start, end);
* the output dicts are built from .tolist() results (no numpy scalar indexing), and the
  softmax is computed for the whole chunk at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

NO_SPAN_NULL_ODDS = 1e6
_NBEST_KEYS = ("text", "probability", "score", "start_logit", "end_logit", "start_char", "end_char")


class SketchDecoded:
    def __init__(self):
        self.predictions: dict[str, str] = {}
        self.nbest: dict[str, list[dict]] = {}
        self.null_odds: dict[str, float] = {}
        self.no_valid_span: list[str] = []
        self.no_features: list[str] = []


def _table(rows: Any, names: list[str]) -> pa.Table:
    """Only the named columns, as Arrow, without going through Python objects for a Dataset."""
    if hasattr(rows, "column_names"):
        return rows.select_columns(names).with_format("arrow")[:]  # respects an indices mapping
    return pa.table({name: [row[name] for row in rows] for name in names})


def _top_k_sets(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the positions of the k largest values; ties: lower positions. Ascending positions.

    Same set as np.argsort(-values, kind="stable")[:, :k], in O(n) per row.
    """
    rows, length = values.shape
    if k >= length:
        return np.broadcast_to(np.arange(length), (rows, length))
    kth = np.partition(values, length - k, axis=1)[:, length - k][:, None]  # k-th largest
    greater = values > kth
    equal = values == kth
    need = k - greater.sum(axis=1, keepdims=True)
    chosen = greater | (equal & (np.cumsum(equal, axis=1) <= need))
    return np.nonzero(chosen)[1].reshape(rows, k)


def _pick_best(scores: np.ndarray, n: int) -> np.ndarray:
    """Per row, the indices of the n best scores ordered by (-score, index)."""
    rows, length = scores.shape
    candidates = _top_k_sets(scores, min(n, length))
    picked = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def _chunk_arrays(table: pa.Table, rows: np.ndarray, start_logits, end_logits):
    """Padded (W, L) logits, (W, L) start/end chars (-1 outside the context), lengths, cls."""
    part = table.take(pa.array(rows))
    offsets_column = part.column("offset_mapping").combine_chunks()
    lengths = np.asarray(offsets_column.value_lengths(), dtype=np.int64)
    flat = np.asarray(offsets_column.flatten().flatten(), dtype=np.int64).reshape(-1, 2)
    windows, width = len(rows), int(lengths.max())
    row_of_token = np.repeat(np.arange(windows), lengths)
    column_of_token = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    start_chars = np.full((windows, width), -1, dtype=np.int64)
    end_chars = np.full((windows, width), -1, dtype=np.int64)
    start_chars[row_of_token, column_of_token] = flat[:, 0]
    end_chars[row_of_token, column_of_token] = flat[:, 1]
    if isinstance(start_logits, np.ndarray) and start_logits.ndim == 2:
        if start_logits.shape[1] < width or end_logits.shape[1] < width:
            raise ValueError("Fewer logits than tokens.")
        starts = start_logits[rows, :width].astype(np.float64)
        ends = end_logits[rows, :width].astype(np.float64)
    else:
        starts = np.full((windows, width), -np.inf)
        ends = np.full((windows, width), -np.inf)
        for i, (row, length) in enumerate(zip(rows.tolist(), lengths.tolist())):
            starts[i, :length] = np.asarray(start_logits[row], dtype=np.float64)[:length]
            ends[i, :length] = np.asarray(end_logits[row], dtype=np.float64)[:length]
    cls = np.asarray(part.column("cls_index").combine_chunks(), dtype=np.int64)
    if np.any(cls < 0) or np.any(cls >= lengths):
        raise ValueError("cls_index outside its window.")
    return starts, ends, start_chars, end_chars, lengths, cls


def batched_decode(
    examples: Any,
    features: Any,
    start_logits,
    end_logits,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
    chunk_windows: int = 2048,
) -> SketchDecoded:
    example_table = _table(examples, ["id", "context"])
    example_ids = [str(x) for x in example_table.column("id").to_pylist()]
    contexts = example_table.column("context").to_pylist()
    feature_table = _table(features, ["example_id", "offset_mapping", "cls_index"])
    feature_example_ids = [str(x) for x in feature_table.column("example_id").to_pylist()]
    position = {qid: i for i, qid in enumerate(example_ids)}
    if len(position) != len(example_ids):
        raise ValueError("Repeated example ids.")
    windows_of: list[list[int]] = [[] for _ in example_ids]
    for index, qid in enumerate(feature_example_ids):
        if qid not in position:
            raise ValueError(f"Feature {index} refers to unknown example id {qid!r}.")
        windows_of[position[qid]].append(index)

    decoded = SketchDecoded()
    chunks, current, size = [], [], 0
    for example, windows in enumerate(windows_of):
        if current and size + len(windows) > chunk_windows:
            chunks.append(current)
            current, size = [], 0
        current.append(example)
        size += len(windows)
    if current:
        chunks.append(current)
    for chunk in chunks:
        _decode_chunk(chunk, windows_of, example_ids, contexts, feature_table, start_logits, end_logits,
                      n_best_size, max_answer_length, version_2_with_negative, null_score_diff_threshold, decoded)
    return decoded


def _decode_chunk(chunk, windows_of, example_ids, contexts, feature_table, start_logits, end_logits,
                  n, max_answer_length, version_2, threshold, decoded):
    rows = np.array([w for e in chunk for w in windows_of[e]], dtype=np.int64)
    if len(rows) == 0:
        for e in chunk:
            _no_features(decoded, example_ids[e])
        return
    owner = np.repeat(np.arange(len(chunk)), [len(windows_of[e]) for e in chunk])  # chunk example of each window
    starts, ends, start_chars, end_chars, lengths, cls = _chunk_arrays(feature_table, rows, start_logits, end_logits)
    windows, width = starts.shape
    context = start_chars >= 0
    k = min(n, width)
    top_s = _top_k_sets(np.where(context, starts, -np.inf), k)  # (W, k), ascending positions
    top_e = _top_k_sets(np.where(context, ends, -np.inf), k)
    s, e = top_s[:, :, None], top_e[:, None, :]
    w = np.arange(windows)[:, None, None]
    valid = context[w, s] & context[w, e] & (e >= s) & (e - s < max_answer_length)
    pair_scores = np.where(valid, starts[w, s] + ends[w, e], -np.inf).reshape(windows, k * k)
    # Grid cells are in (start, end) position order, so index order breaks score ties correctly.
    best = _pick_best(pair_scores, n)  # (W, <=n)
    cand_valid = np.take_along_axis(valid.reshape(windows, k * k), best, axis=1)
    cand_w = np.broadcast_to(np.arange(windows)[:, None], best.shape)[cand_valid]
    cell = best[cand_valid]
    cand_s, cand_e = top_s[cand_w, cell // k], top_e[cand_w, cell % k]
    cand_rank = np.broadcast_to(np.arange(best.shape[1])[None, :], best.shape)[cand_valid]
    cand_start_logit = starts[cand_w, cand_s]
    cand_end_logit = ends[cand_w, cand_e]
    cand_score = cand_start_logit + cand_end_logit
    cand_owner = owner[cand_w]
    # Per example: -score, then window (chunk rows are in window order), then (start, end) rank.
    order = np.lexsort((cand_w * n + cand_rank, -cand_score, cand_owner))
    sorted_owner = cand_owner[order]
    first = np.searchsorted(sorted_owner, np.arange(len(chunk)))
    keep = order[(np.arange(len(order)) - first[sorted_owner]) < n]

    # Null: the first window with the lowest CLS score.
    cls_start, cls_end = starts[np.arange(windows), cls], ends[np.arange(windows), cls]
    cls_score = cls_start + cls_end
    null_order = np.lexsort((np.arange(windows), cls_score, owner))
    null_first = null_order[np.minimum(np.searchsorted(owner[null_order], np.arange(len(chunk))), windows - 1)]

    kept_owner = cand_owner[keep].tolist()
    kept_w = cand_w[keep]
    columns = zip(
        kept_owner,
        start_chars[kept_w, cand_s[keep]].tolist(),
        end_chars[kept_w, cand_e[keep]].tolist(),
        cand_score[keep].tolist(),
        cand_start_logit[keep].tolist(),
        cand_end_logit[keep].tolist(),
    )
    spans_of: list[list[dict]] = [[] for _ in chunk]
    for o, sc, ec, score, sl, el in columns:
        spans_of[o].append({"text": contexts[chunk[o]][sc:ec], "score": score, "start_logit": sl,
                            "end_logit": el, "start_char": sc, "end_char": ec})
    null_scores = cls_score[null_first].tolist()
    null_starts = cls_start[null_first].tolist()
    null_ends = cls_end[null_first].tolist()
    for o, example in enumerate(chunk):
        qid = example_ids[example]
        if not windows_of[example]:
            _no_features(decoded, qid)
            continue
        spans = spans_of[o]
        if spans:
            null_odds = null_scores[o] - spans[0]["score"]
            answer = spans[0]["text"]
        else:
            decoded.no_valid_span.append(qid)
            null_odds = NO_SPAN_NULL_ODDS
            answer = ""
        entries = spans
        if version_2:
            if null_odds > threshold:
                answer = ""
            null = {"text": "", "score": null_scores[o], "start_logit": null_starts[o], "end_logit": null_ends[o],
                    "start_char": None, "end_char": None}
            at = 0
            while at < len(spans) and spans[at]["score"] >= null["score"]:
                at += 1
            entries = spans[:at] + [null] + spans[at:]
        decoded.predictions[qid] = answer
        decoded.nbest[qid] = _softmax(entries)
        decoded.null_odds[qid] = null_odds


def _softmax(entries: list[dict]) -> list[dict]:
    """Plain Python: for ~20 numbers, math.exp beats a numpy round trip per example."""
    if not entries:
        return []
    best = max(entry["score"] for entry in entries)
    weights = [math.exp(entry["score"] - best) for entry in entries]
    total = sum(weights)
    return [
        {"text": entry["text"], "probability": weight / total, "score": entry["score"],
         "start_logit": entry["start_logit"], "end_logit": entry["end_logit"], "start_char": entry["start_char"],
         "end_char": entry["end_char"]}
        for entry, weight in zip(entries, weights)
    ]


def _no_features(decoded: SketchDecoded, qid: str) -> None:
    decoded.no_features.append(qid)
    decoded.predictions[qid] = ""
    decoded.nbest[qid] = []
    decoded.null_odds[qid] = NO_SPAN_NULL_ODDS
