"""Which windows go into which batch: length-grouped training batches, longest-first evaluation.

Padding is the waste of dynamic batching: a batch is padded to its longest window. Sorting
evaluation windows longest first, and grouping training windows of similar length, keeps it
small without changing what is computed (evaluation restores the order; training batches
stay random in order).
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from torch.utils.data import Sampler


def window_lengths(features: Dataset) -> np.ndarray:
    """Tokens per window, read from the Arrow column without materialising the ids.

    `features.data` is the underlying table: a Dataset made by `select` (an indices mapping)
    views its rows through `_indices`, so the lengths are gathered the same way.
    """
    import pyarrow.compute as pc

    lengths = np.asarray(pc.list_value_length(features.data.column("input_ids")))
    if features._indices is not None:
        lengths = lengths[np.asarray(features._indices.column(0))]
    return lengths


def longest_first(features: Dataset) -> tuple[Dataset, np.ndarray]:
    """Windows sorted longest first, so each padded batch wastes little; plus the order to undo it.

    Decoding sees the logits back in the original order, so predictions do not depend on it.
    """
    order = np.argsort(-window_lengths(features), kind="stable")
    return features.select(order), np.argsort(order)


def padding_multiple(training_args) -> int:
    """Dynamic padding rounds each batch's length up to a multiple of this.

    8 keeps tensor-core shapes on GPUs and costs nothing measurable on CPU. A compiled
    model recompiles for every new input shape: at 384 tokens, multiples of 8 give up to
    48 shapes, multiples of 64 only 6.
    """
    return 64 if training_args.torch_compile else 8


class LengthGroupedBatches(Sampler):
    """Training batches of windows of similar length, in random order.

    Windows are shuffled, cut into pools of `pool_batches` batches, sorted by length inside
    each pool and cut into batches; then the batches are shuffled. transformers'
    LengthGroupedSampler keeps each pool's batches in longest-to-shortest order, which gives
    every stretch of training a long-to-short curriculum and cost accuracy in our bench;
    shuffling the batches keeps the padding saving without it. The batch holding the longest
    window goes first (an out-of-memory error shows at once) and a short last batch stays
    last, so the DataLoader cuts batches exactly here. Deterministic per (seed, epoch).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, pool_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch))
        shuffled = rng.permutation(len(self.lengths))
        full, partial = [], []
        for begin in range(0, len(shuffled), self.pool):
            pool = shuffled[begin : begin + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            for start in range(0, len(pool), self.batch_size):
                batch = pool[start : start + self.batch_size]
                (full if len(batch) == self.batch_size else partial).append(batch)
        full = [full[i] for i in rng.permutation(len(full))]
        if full:
            longest = max(range(len(full)), key=lambda i: self.lengths[full[i]].max())
            full[0], full[longest] = full[longest], full[0]
        return full + partial

    def __iter__(self):
        return iter(np.concatenate(self.batches()).tolist() if len(self.lengths) else [])
