"""slmqa.decoding.spans: n-best spans and the null score of one example's windows, against hand-computed expectations."""

from __future__ import annotations

import numpy as np

from slmqa.decoding.spans import decode_spans

# One window: [CLS] [question] abc def ghi jkl
CONTEXT = "abc def ghi jkl"


OFFSETS = [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11], [12, 15]]


def spans(start, end, n_best_size=20, max_answer_length=30, offsets=None, cls_index=None):
    start, end = np.atleast_2d(np.asarray(start, dtype=np.float32)), np.atleast_2d(np.asarray(end, dtype=np.float32))
    offsets = np.asarray(OFFSETS if offsets is None else offsets)
    if offsets.ndim == 2:
        offsets = offsets[None]
    cls_index = np.zeros(len(start), dtype=int) if cls_index is None else np.asarray(cls_index)
    return decode_spans(start, end, offsets, cls_index, n_best_size, max_answer_length)


def chars(candidates):
    return [(c["start_char"], c["end_char"]) for c in candidates]


def test_best_span_and_non_context_rejected():
    # Position 1 (question) has the highest logits: (1, 1) would score 18 but is no context.
    candidates, null = spans([0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2], n_best_size=5)
    # (3,4)=11, (4,4)=8, (2,4)=7 and (3,5)=7 (lower start first), (3,3)=6.
    assert chars(candidates) == [(4, 11), (8, 11), (0, 11), (4, 15), (4, 7)]
    assert [c["score"] for c in candidates] == [11.0, 8.0, 7.0, 7.0, 6.0]
    assert (candidates[0]["start_logit"], candidates[0]["end_logit"]) == (5.0, 6.0)
    assert null == 0.0
    assert candidates[0]["text"] is None


def test_end_before_start_rejected():
    candidates, _ = spans([0, 0, 0, 0, 8, 0], [0, 0, 0, 7, 0, 0])
    # (4,3) would score 15; the best valid ones are (4,4)=8 and (4,5)=8, lower end first.
    assert chars(candidates[:2]) == [(8, 11), (8, 15)]
    assert all(start < end for start, end in chars(candidates))


def test_too_long_span_rejected():
    start, end = [0, 0, 5, 0, 0, 0], [0, 0, 0, 0, 0, 5]
    short, _ = spans(start, end, max_answer_length=3)
    assert (0, 15) not in chars(short)
    assert short[0]["score"] == 5.0
    long_enough, _ = spans(start, end, max_answer_length=4)
    assert chars(long_enough)[0] == (0, 15)
    assert long_enough[0]["score"] == 10.0


def test_only_top_k_starts_and_ends_are_paired():
    # n_best_size=1 keeps start 4 and end 3 only: their pair is invalid, so nothing is left.
    candidates, null = spans([0, 0, 0, 1, 8, 0], [0, 0, 0, 7, 1, 0], n_best_size=1)
    assert candidates == []
    assert null == 0.0
    candidates, _ = spans([0, 0, 0, 1, 8, 0], [0, 0, 0, 7, 1, 0], n_best_size=2)
    # Starts {4, 3}, ends {3, 4}: (4,4)=9, (3,3)=8, (3,4)=2; (4,3) is invalid.
    assert chars(candidates) == [(8, 11), (4, 7)]


def test_non_context_positions_do_not_take_top_k_slots():
    # Position 1 (question) has the top logits; with one slot it must not crowd out (3, 4).
    candidates, _ = spans([0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2], n_best_size=1)
    assert chars(candidates) == [(4, 11)]


def test_top_k_ties_keep_the_lower_positions():
    # 20 context tokens (position p covers chars [10p, 10p+5)), logit 1 at odd positions.
    # Top 3 starts and ends are positions 1, 3, 5 (numpy's unstable argsort picks 1, 3, 7);
    # with one-token answers the spans are (1,1), (3,3), (5,5), all scoring 2.
    offsets = [[-1, -1]] + [[10 * p, 10 * p + 5] for p in range(1, 21)]
    logits = [0.0] + [1.0 if p % 2 else 0.0 for p in range(1, 21)]
    candidates, _ = spans(logits, logits, n_best_size=3, max_answer_length=1, offsets=offsets)
    assert chars(candidates) == [(10, 15), (30, 35), (50, 55)]


def test_cls_index_respected():
    start, end = [0, 9, 1, 5, 2, 0], [0, 9, 0, 1, 6, 2]
    assert spans(start, end, cls_index=[1])[1] == 18.0
    assert spans(start, end, cls_index=[0])[1] == 0.0


def test_multi_window_best_window_and_null_minimum():
    # Context "abc def ghi jkl mno"; window 0 covers abc def ghi, window 1 ghi jkl mno.
    offsets = [
        [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11]],
        [[-1, -1], [-1, -1], [8, 11], [12, 15], [16, 19]],
    ]
    start = [[1, 0, 3, 0, 0], [0.5, 0, 0, 4, 0]]
    end = [[2, 0, 0, 3, 0], [0.5, 0, 0, 0, 4]]
    candidates, null = spans(start, end, offsets=offsets, n_best_size=2)
    assert chars(candidates) == [(12, 19), (0, 7)]  # window 1: 4+4=8, window 0: 3+3=6
    assert null == 1.0  # min(1+2, 0.5+0.5)


def test_equal_scores_prefer_the_lower_window():
    offsets = [[[-1, -1], [0, 3]], [[-1, -1], [8, 11]]]
    candidates, _ = spans([[0, 2], [0, 2]], [[0, 3], [0, 3]], offsets=offsets)
    assert chars(candidates) == [(0, 3), (8, 11)]


def test_padded_window_positions_are_never_used():
    # Window 1 is shorter: its last position is padding (offsets -1, logits -inf).
    offsets = [[[-1, -1], [0, 3], [4, 7]], [[-1, -1], [8, 11], [-1, -1]]]
    start = [[0, 1, 0], [0, 2, -np.inf]]
    end = [[0, 0, 1], [0, 2, -np.inf]]
    candidates, null = spans(start, end, offsets=offsets)
    assert chars(candidates) == [(8, 11), (0, 7), (0, 3), (4, 7)]
    assert null == 0.0
