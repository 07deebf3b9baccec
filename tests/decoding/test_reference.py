"""The vectorised decoder (slmqa.decoding.predictions) against the plain-loop reference.

The reference (bench/reference_decoder.py) walks windows, top-k starts and top-k ends one
at a time. Both must give the same predictions, n-best lists and null odds on random
logits, including logits full of exact ties, masked (non-context) positions, padded
windows, multi-window examples, examples without windows or without any valid span, in
v1 and v2 modes and for several n_best_size / max_answer_length values. Small hand-built
features only: no tokenizer, no data files.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from bench.reference_decoder import NO_SPAN_NULL_ODDS, compare, reference_decode, top_positions
from slmqa.decoding import predictions as decoding_predictions
from slmqa.decoding.predictions import decode_predictions
from slmqa.settings import QASettings


def fast_decode(examples, features, starts, ends, **options):
    """decode_predictions with QASettings(**options): the reference decoder takes the same options as keywords."""
    return decode_predictions(examples, features, starts, ends, QASettings(**options))

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def make_example(rng: np.random.Generator, qid: str, n_windows: int) -> tuple[dict, list[dict]]:
    """One example and its windows, laid out like preprocess.eval_features makes them.

    Each window: CLS (offset -1) at cls_index, a few question tokens and separators (-1),
    a run of context tokens (overlapping the previous window), and sometimes a few
    trailing -1 positions (padding). Windows have different lengths.
    """
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=int(rng.integers(15, 60)))]
    context = " ".join(words)
    spans, position = [], 0
    for word in words:
        spans.append([position, position + len(word)])
        position += len(word) + 1
    features = []
    first = 0
    for _ in range(n_windows):
        n_question = int(rng.integers(1, 5))
        n_context = int(rng.integers(1, min(len(spans), 25) + 1))
        first = min(first, len(spans) - n_context)
        offsets = [[-1, -1]] * (1 + n_question + 1)  # CLS, question, SEP
        offsets = offsets + [list(s) for s in spans[first : first + n_context]] + [[-1, -1]]
        offsets += [[-1, -1]] * int(rng.integers(0, 4))  # padding inside the window
        cls_index = 0 if rng.random() < 0.8 else int(rng.integers(0, len(offsets)))
        features.append({"example_id": qid, "offset_mapping": offsets, "cls_index": cls_index})
        first = max(0, first + n_context - int(rng.integers(0, n_context + 1)))
    return {"id": qid, "context": context}, features


def make_batch(rng: np.random.Generator, n_examples: int, ties: str) -> tuple[list, list, list, list]:
    """Examples, features and float32 logits as a list of per-feature 1-D arrays."""
    examples, features = [], []
    for i in range(n_examples):
        example, windows = make_example(rng, f"q{i}", int(rng.integers(1, 6)))
        examples.append(example)
        features.extend(windows)
    # An example without any window, and one whose only window has no context token.
    examples.append({"id": "no-windows", "context": "nothing"})
    examples.append({"id": "no-context", "context": "question only"})
    features.append({"example_id": "no-context", "offset_mapping": [[-1, -1]] * 6, "cls_index": 0})
    order = rng.permutation(len(features))  # windows of one example need not be adjacent
    features = [features[i] for i in order]
    starts, ends = [], []
    for feature in features:
        length = len(feature["offset_mapping"])
        s, e = rng.normal(size=(2, length)).astype(np.float32) * 3
        if ties == "rounded":  # many exact ties, also across windows and with the null score
            s, e = np.round(s, 1), np.round(e, 1)
        elif ties == "integers":  # almost everything ties
            s, e = rng.integers(-2, 3, size=(2, length)).astype(np.float32)
        if rng.random() < 0.5:  # a high CLS score, so that v2 answers some examples with ""
            s[feature["cls_index"]] += 8
            e[feature["cls_index"]] += 8
        starts.append(s.astype(np.float32))
        ends.append(e.astype(np.float32))
    return examples, features, starts, ends


def padded(rows: list[np.ndarray], fill: float) -> np.ndarray:
    """The Trainer's (n_features, L_max) layout; the fill must never be read."""
    out = np.full((len(rows), max(len(r) for r in rows)), fill, dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def assert_agree(examples, features, starts, ends, **options):
    fast = fast_decode(examples, features, starts, ends, **options)
    reference = reference_decode(examples, features, starts, ends, **options)
    result = compare(fast, reference)
    assert result["same_ids_and_order"], result
    assert result["prediction_mismatches"] == 0, result
    assert result["nbest_or_null_odds_mismatches"] == 0, result
    assert result["same_no_valid_span"] and result["same_no_features"], result
    return fast, reference


@pytest.mark.parametrize("ties", ["none", "rounded", "integers"])
@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize("n_best_size, max_answer_length", [(1, 1), (3, 4), (5, 2), (20, 30), (40, 8)])
def test_fast_and_reference_agree(ties, version_2, n_best_size, max_answer_length):
    seed = zlib.crc32(repr((ties, version_2, n_best_size, max_answer_length)).encode())
    rng = np.random.default_rng(seed)
    examples, features, starts, ends = make_batch(rng, 25, ties)
    options = dict(
        n_best_size=n_best_size,
        max_answer_length=max_answer_length,
        version_2_with_negative=version_2,
        null_score_diff_threshold=0.0 if ties == "none" else 0.5,
    )
    fast, reference = assert_agree(examples, features, starts, ends, **options)
    assert reference.no_features == ["no-windows"]
    assert "no-context" in reference.no_valid_span
    answered = [text != "" for qid, text in reference.predictions.items() if qid.startswith("q")]
    assert any(answered)
    if version_2:
        assert not all(answered)
    # The Trainer's padded array gives the same answers; its padding is never read.
    assert_agree(examples, features, padded(starts, 1e9), padded(ends, 1e9), **options)


def test_ties_across_windows_and_with_the_null_score():
    # Two windows with the same logits over different characters: every span and the
    # null score are 0. Ties go to the lower window, then the lower start, then the lower
    # end; in v2 the null entry goes after every span of equal score.
    offsets_0 = [[-1, -1], [-1, -1], [0, 1], [2, 3], [4, 5], [-1, -1]]
    offsets_1 = [[-1, -1], [-1, -1], [6, 7], [8, 9], [10, 11], [-1, -1]]
    features = [
        {"example_id": "a", "offset_mapping": offsets_1, "cls_index": 0},
        {"example_id": "a", "offset_mapping": offsets_0, "cls_index": 0},
    ][::-1]
    logits = np.array([0, 9, 0, 0, 0, 9], dtype=np.float32)
    examples = [{"id": "a", "context": "x y z x y z"}]
    for version_2 in (False, True):
        fast, reference = assert_agree(
            examples, features, [logits, logits], [logits, logits], n_best_size=4, version_2_with_negative=version_2
        )
        chars = [(e["start_char"], e["end_char"], e["score"]) for e in reference.nbest["a"]]
        expected = [(0, 1, 0.0), (0, 3, 0.0), (0, 5, 0.0), (2, 3, 0.0)]
        if version_2:
            expected.append((None, None, 0.0))
        assert chars == expected
        assert reference.predictions["a"] == "x" and reference.null_odds["a"] == 0.0


def test_reference_on_a_hand_computed_example():
    # Window 0: context tokens 2..4; window 1: context tokens 1..2 (same chars as 0's 3..4).
    examples = [{"id": "a", "context": "red big car"}]
    features = [
        {"example_id": "a", "offset_mapping": [[-1, -1], [-1, -1], [0, 3], [4, 7], [8, 11]], "cls_index": 0},
        {"example_id": "a", "offset_mapping": [[-1, -1], [4, 7], [8, 11], [-1, -1]], "cls_index": 0},
    ]
    starts = [np.array([5, 50, 1, 2, 0], np.float32), np.array([1, 3, 0, 50], np.float32)]
    ends = [np.array([5, 50, 0, 1, 2.5], np.float32), np.array([4, 0, 2, 50], np.float32)]
    decoded = reference_decode(examples, features, starts, ends, n_best_size=2, max_answer_length=2,
                               version_2_with_negative=True, null_score_diff_threshold=0.0)
    # Window 0: top starts 3 (2), 2 (1); top ends 4 (2.5), 3 (1); pairs (3,4)=4.5, (3,3)=3,
    # (2,3)=2; (2,4) is 3 tokens long. Window 1: starts 1 (3), 2 (0); ends 2 (2), 1 (0):
    # (1,2)=5, (1,1)=3, (2,2)=2. Best two: 5 (window 1) and 4.5. Null: min(10, 5) = 5.
    nbest = decoded.nbest["a"]
    assert [(e["text"], e["score"]) for e in nbest] == [("big car", 5.0), ("", 5.0), ("big car", 4.5)]
    assert decoded.null_odds["a"] == 0.0 and decoded.predictions["a"] == "big car"
    assert math.isclose(sum(e["probability"] for e in nbest), 1.0)
    assert_agree(examples, features, starts, ends, n_best_size=2, max_answer_length=2, version_2_with_negative=True)


@pytest.mark.parametrize("seed", range(5))
def test_top_positions_is_a_stable_descending_order(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 3, size=40).astype(float).tolist()
    values[::7] = [-math.inf] * len(values[::7])
    for k in (1, 5, 40, 60):
        expected = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
        assert top_positions(values, k) == expected


def test_datasets_input_and_constants():
    from datasets import Dataset

    rng = np.random.default_rng(7)
    examples, features, starts, ends = make_batch(rng, 6, "rounded")
    assert_agree(Dataset.from_list(examples), Dataset.from_list(features), padded(starts, -100.0),
                 padded(ends, -100.0), n_best_size=5, version_2_with_negative=True)
    assert NO_SPAN_NULL_ODDS == decoding_predictions.NO_SPAN_NULL_ODDS


@pytest.mark.parametrize("chunk_windows", [1, 7])
@pytest.mark.parametrize("as_dataset", [False, True])
def test_any_chunk_size_gives_the_same_answers(monkeypatch, chunk_windows, as_dataset):
    # Small chunks: many chunks, an example's windows never split, windows read out of order.
    from datasets import Dataset

    monkeypatch.setattr(decoding_predictions, "CHUNK_WINDOWS", chunk_windows)
    rng = np.random.default_rng(chunk_windows)
    examples, features, starts, ends = make_batch(rng, 20, "rounded")
    if as_dataset:
        examples, features = Dataset.from_list(examples), Dataset.from_list(features)
        starts, ends = padded(starts, -100.0), padded(ends, -100.0)
    for version_2 in (False, True):
        assert_agree(examples, features, starts, ends, n_best_size=4, max_answer_length=5,
                     version_2_with_negative=version_2, null_score_diff_threshold=0.5)


def test_dataset_with_an_indices_mapping_and_int32_offsets():
    # Datasets after select()/shuffle() read rows through an indices mapping; offsets may be int32.
    from datasets import Dataset, Features, List, Value

    rng = np.random.default_rng(3)
    examples, features, starts, ends = make_batch(rng, 15, "integers")
    schema = Features(
        {"example_id": Value("string"), "offset_mapping": List(List(Value("int32"))), "cls_index": Value("int64")}
    )
    reversed_features = Dataset.from_list(features[::-1], features=schema)
    feature_rows = reversed_features.select(range(len(features) - 1, -1, -1))
    example_rows = Dataset.from_list(examples[::-1]).select(range(len(examples) - 1, -1, -1))
    assert feature_rows._indices is not None and example_rows._indices is not None
    assert feature_rows[0] == features[0]
    for version_2 in (False, True):
        assert_agree(example_rows, feature_rows, starts, ends, n_best_size=6, version_2_with_negative=version_2)


def test_working_memory_is_bounded_by_the_chunk(monkeypatch):
    # 1,000 windows of 384 tokens, decoded 64 at a time: nothing near a float64 copy of all
    # logits (6 MB) or a Python list per token (~40 MB) is ever held beyond the result.
    import tracemalloc

    import pyarrow as pa
    from datasets import Dataset

    monkeypatch.setattr(decoding_predictions, "CHUNK_WINDOWS", 64)
    n, length = 1000, 384
    pairs = np.stack([np.arange(length) * 2, np.arange(length) * 2 + 1], axis=-1)
    pairs[:3] = -1  # CLS and question
    flat = np.tile(pairs, (n, 1)).ravel()
    inner = pa.ListArray.from_arrays(np.arange(0, 2 * n * length + 1, 2, dtype=np.int32), flat)
    outer = pa.ListArray.from_arrays(np.arange(0, n * length + 1, length, dtype=np.int32), inner)
    ids = [f"q{i}" for i in range(n)]
    features = Dataset(pa.table({"example_id": ids, "offset_mapping": outer, "cls_index": np.zeros(n, dtype=np.int64)}))
    examples = Dataset.from_dict({"id": ids, "context": ["x" * (2 * length)] * n})
    rng = np.random.default_rng(0)
    starts, ends = rng.normal(size=(2, n, length)).astype(np.float32)

    tracemalloc.start()
    decoded = fast_decode(examples, features, starts, ends, n_best_size=5)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(decoded.predictions) == n
    assert peak - retained < 0.5 * 2 * starts.size * 8, (peak, retained)
