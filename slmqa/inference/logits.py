"""The one loop that turns windows into logits outside the Trainer, whatever backend runs the model.

Windows are batched longest first, so that each batch pads only to its own longest window,
and the logits of each window come back trimmed to its length, in the windows' order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def pad_batch(rows: list[dict], names: Sequence[str], pad_id: int) -> dict[str, np.ndarray]:
    """Windows padded to the longest of them: ids with pad_id, mask and token types with 0."""
    width = max(len(row["input_ids"]) for row in rows)
    batch = {}
    for name in names:
        fill = pad_id if name == "input_ids" else 0
        array = np.full((len(rows), width), fill, dtype=np.int64)
        for i, row in enumerate(rows):
            array[i, : len(row[name])] = row[name]
        batch[name] = array
    return batch


def window_logits(
    backend, windows: Mapping[str, Sequence], pad_id: int, batch_size: int = 32, progress: str | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of every window, each trimmed to its own length, in the windows' order.

    `windows` holds columns (input_ids, attention_mask, token_type_ids, ...; other columns
    are ignored); `progress` names a progress bar (none when None).
    """
    names = [name for name in MODEL_INPUTS if name in windows]
    columns = {name: windows[name] for name in names}
    lengths = np.fromiter(map(len, columns["input_ids"]), dtype=np.int64, count=len(columns["input_ids"]))
    order = np.argsort(-lengths, kind="stable")
    starts: list = [None] * len(lengths)
    ends: list = [None] * len(lengths)
    batches = range(0, len(order), batch_size)
    if progress is not None:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=progress, unit="batch")
    for first in batches:
        indices = order[first : first + batch_size].tolist()
        rows = [{name: columns[name][i] for name in names} for i in indices]
        start, end = backend.logits(pad_batch(rows, names, pad_id))
        for row, index in enumerate(indices):
            starts[index], ends[index] = start[row, : lengths[index]], end[row, : lengths[index]]
    return starts, ends
