"""Dataset-level decoding: the logits of every window back to an answer per question.

`decode_predictions` reads the windows of many examples from Arrow and decodes them
together, a chunk at a time, into predictions, n-best lists and null odds; span scoring
inside windows is `spans.decode_windows`. Pure numpy: no torch.

Speed and memory (measured in bench/README.md): numpy calls are amortised over thousands
of windows and working memory is bounded by the chunk rather than by the data set.
Offsets go from Arrow straight into numpy (never one Python list per token); logits keep
their dtype (float32 from the Trainer) and only the few values that get scored are added
in float64.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from slmqa.decoding.spans import Entries, decode_windows, no_entries, rank_in_group
from slmqa.decoding.squad_metrics import squad_v1_scores, squad_v2_scores
from slmqa.settings import DEFAULTS, QASettings

logger = logging.getLogger(__name__)

# null_odds recorded for an example that has no valid span at all. It is finite so the
# JSON files stay strict JSON (json.dumps writes inf as `Infinity`), and large enough that
# any sensible threshold predicts "no answer", which is what the example gets.
NO_SPAN_NULL_ODDS = 1e6
# Windows decoded together (fewer when n_best_size > 20: the pair grid has n_best_size**2
# cells per window). About 30 MB of working memory at the defaults.
CHUNK_WINDOWS = 2048
CHUNK_PAIR_CELLS = CHUNK_WINDOWS * 20 * 20


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


class Table:
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
    features: Table,
    rows: np.ndarray,
    example: np.ndarray,
    start_logits: Any,
    end_logits: Any,
    cls_index: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[Entries, Entries]:
    """Read the offsets and logits of the given features (example[i] owns rows[i]) and decode them together."""
    if len(rows) == 0:
        return no_entries(), no_entries()
    offsets, lengths = features.offsets(rows)
    cls = cls_index[rows]
    outside = np.flatnonzero((cls < 0) | (cls >= lengths))
    if len(outside):
        bad = outside[0]
        raise ValueError(f"Feature {rows[bad]}: cls_index {cls[bad]} outside its {lengths[bad]} tokens.")
    width = int(lengths.max())
    starts = _logit_block(start_logits, rows, lengths, width)
    ends = _logit_block(end_logits, rows, lengths, width)
    return decode_windows(starts, ends, offsets, lengths, cls, example, n_best_size, max_answer_length)


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


def _with_null(spans: Entries, nulls: Entries, n_examples: int) -> Entries:
    """Spans and null entries in n-best order: a null entry goes after every span of its example scoring >= it.

    Spans are grouped by example and best first, so each null entry's place is its
    example's first span plus the number of its spans scoring >= it (np.insert, no sort).
    """
    null_score = np.zeros(n_examples)
    null_score[nulls.example] = nulls.score
    ahead = np.bincount(spans.example, weights=spans.score >= null_score[spans.example], minlength=n_examples)
    places = np.searchsorted(spans.example, nulls.example) + ahead[nulls.example].astype(np.int64)
    return Entries(*(np.insert(column, places, null_column) for column, null_column in zip(spans, nulls)))


def _nbest_lists(entries: Entries, contexts: list[str]) -> list[list[dict]]:
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
    spans: Entries,
    nulls: Entries,
    version_2_with_negative: bool,
    null_score_diff_threshold: float,
) -> None:
    """Add one chunk's predictions, n-best lists, null odds and flags to `decoded`, in example order."""
    n = len(ids)
    best = spans.take(rank_in_group(spans.example) == 0)
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
    settings: QASettings = DEFAULTS,
) -> Decoded:
    """Answer every example from the logits of its windows (features).

    `examples` / `features`: datasets.Dataset or sequences of dicts, as data.windows makes
    them (example `id`, `context`; feature `example_id`, `offset_mapping` with [-1, -1]
    outside the context, `cls_index`). `start_logits` / `end_logits`: one row per
    feature, either a (n_features, L_max) array padded by the Trainer (padding ignored) or
    a list of 1-D arrays.

    `settings` gives n_best_size, max_answer_length and the SQuAD v2 mode. Without
    version_2_with_negative the best span is the answer. With it, the answer is "" when
    null score - best span score > null_score_diff_threshold, and the n-best list also
    holds the "no answer" entry. Every example gets exactly one prediction; examples
    without windows or without any valid span get "" and are listed in the result.

    Same results as `decode_spans` example by example, but whole chunks of examples are
    decoded at once (see the module docstring).
    """
    n_best_size, max_answer_length = settings.n_best_size, settings.max_answer_length
    example_table = Table(examples, ["id", "context"])
    feature_table = Table(features, ["example_id", "offset_mapping", "cls_index"])
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
        _collect(
            decoded, ids, contexts, spans, nulls, settings.version_2_with_negative, settings.null_score_diff_threshold
        )

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


def has_gold_answers(examples: Any) -> bool:
    """A test set without labels has no `answers` or only empty ones: nothing to score."""
    try:
        answers = Table(examples, ["answers"]).pylist("answers")
    except KeyError:
        return False
    return any(answer and answer.get("text") for answer in answers)


def references(examples: Any) -> dict[str, list[str]]:
    """Gold answer texts by example id; an empty list marks an unanswerable question."""
    table = Table(examples, ["id", "answers"])
    ids, answers = table.pylist("id"), table.pylist("answers")
    return {str(qid): list(answer["text"]) for qid, answer in zip(ids, answers)}


def squad_scores(decoded: Decoded, examples: Any, settings: QASettings) -> dict:
    """SQuAD v2 metrics (null odds against the threshold in settings) or v1 metrics, of decoded predictions.

    v2 scores the best spans with their null odds and the threshold in use: exact/f1 are those
    of the predictions as written (a span whose odds exceed the threshold counts as ""), and
    the best-threshold search can also look above the threshold in use.
    """
    gold = references(examples)
    if settings.version_2_with_negative:
        return squad_v2_scores(decoded.span_predictions, gold, decoded.null_odds, settings.null_score_diff_threshold)
    return squad_v1_scores(decoded.predictions, gold)
