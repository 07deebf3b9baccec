"""slmqa.training.sampling: length-grouped training batches and longest-first evaluation save padding, not randomness."""

from __future__ import annotations

import numpy as np
import pytest

from slmqa.training.sampling import LengthGroupedBatches, longest_first, window_lengths
from tests.inference.test_logits import eval_features, varied_records


def test_sorting_longest_first_is_undone(tokenizer):
    features = eval_features(tokenizer, varied_records(), pad_to_max_length=False)
    by_length, restore = longest_first(features)
    lengths = window_lengths(by_length)
    assert (np.diff(lengths) <= 0).all()
    assert by_length.select(restore)["example_id"] == features["example_id"]


@pytest.mark.parametrize("size,batch", [(1000, 16), (37, 8), (8, 8), (5, 8)])
def test_length_grouped_batches_cover_every_window_once(size, batch):
    lengths = np.random.default_rng(size).integers(10, 385, size)
    sampler = LengthGroupedBatches(lengths, batch, seed=1, pool_batches=10)
    order = list(sampler)
    assert sorted(order) == list(range(size)) and len(sampler) == size
    batches = [order[i : i + batch] for i in range(0, size, batch)]
    assert lengths[batches[0]].max() == lengths.max()  # longest batch first
    assert [len(b) for b in batches[:-1]] == [batch] * (len(batches) - 1)


def test_length_grouped_batches_cut_padding_but_not_randomness():
    lengths = np.random.default_rng(0).integers(10, 385, 4000)
    sampler = LengthGroupedBatches(lengths, 16, seed=3)
    grouped = sampler.batches()
    padded_tokens = sum(len(b) * lengths[b].max() for b in grouped)
    random_batches = np.array_split(np.random.default_rng(1).permutation(4000), 250)
    random_tokens = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded_tokens < 0.7 * random_tokens
    # No long-to-short curriculum: batch maxima are not ordered within any stretch of training.
    maxima = np.array([lengths[b].max() for b in grouped[1:]])
    assert abs(np.corrcoef(np.arange(len(maxima)), maxima)[0, 1]) < 0.2
    assert (np.diff(maxima) > 0).sum() > len(maxima) // 3
    # Deterministic per (seed, epoch), different across epochs.
    assert list(sampler) == list(LengthGroupedBatches(lengths, 16, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != list(LengthGroupedBatches(lengths, 16, seed=3))


def test_window_lengths_read_through_a_selection(tokenizer):
    features = eval_features(tokenizer, varied_records(), pad_to_max_length=False)
    lengths = [len(ids) for ids in features["input_ids"]]
    assert window_lengths(features).tolist() == lengths
    picked = [5, 0, 3]
    assert window_lengths(features.select(picked)).tolist() == [lengths[i] for i in picked]
    assert set(window_lengths(eval_features(tokenizer, varied_records(), pad_to_max_length=True)).tolist()) == {64}
