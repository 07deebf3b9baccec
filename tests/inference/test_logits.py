"""slmqa.inference.logits: batching longest first with dynamic padding changes speed, never the logits."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering

from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.windows import Windower
from slmqa.inference.backends import load_backend
from slmqa.inference.logits import MODEL_INPUTS, pad_batch, window_logits
from slmqa.inference.runtime import Runtime
from slmqa.settings import QASettings
from tests.helpers import make_record

WORDS = "the pump runs at a steady pressure while the valve stays closed during the night shift".split()
SETTINGS = QASettings(max_seq_length=64, doc_stride=16)


def varied_records(count: int = 9) -> list[dict]:
    """Contexts from a few words to several windows long, so that windows differ in length."""
    records = []
    for i in range(count):
        filler = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(4 + 23 * i))
        context = f"{filler}. Pump P-{i} delivers {10 + i} bar. {filler}."
        records.append(make_record(f"q{i}", context, f"What does pump P-{i} deliver?", f"{10 + i} bar"))
    return records


def eval_features(tokenizer, records, pad_to_max_length: bool):
    examples = RecordChecker(tokenizer, SETTINGS).check("validation", records, SplitReport("inline"))
    return Windower(tokenizer, SETTINGS, pad_to_max_length=pad_to_max_length).eval_features(examples)


def test_pad_batch_pads_ids_with_the_pad_id_and_the_rest_with_zeros():
    rows = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1]}, {"input_ids": [5], "attention_mask": [1]}]
    batch = pad_batch(rows, ["input_ids", "attention_mask"], pad_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 9, 9]] and batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["input_ids"].dtype == np.int64


def test_dynamic_padding_gives_the_same_logits_as_padding_to_max(tiny_model_dir, tokenizer):
    records = varied_records()
    dynamic = eval_features(tokenizer, records, pad_to_max_length=False)
    padded = eval_features(tokenizer, records, pad_to_max_length=True)
    lengths = np.array([len(ids) for ids in dynamic["input_ids"]])
    assert len(set(lengths.tolist())) > 3 and lengths.min() < 64, "the windows must differ in length"
    # The reference recipe: every window padded to max_seq_length, one batch, data order.
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        output = model(**{name: torch.tensor(padded[name]) for name in MODEL_INPUTS})
    start_ref, end_ref = output.start_logits.numpy(), output.end_logits.numpy()
    # Sorted, dynamically padded batches of 4: batches mix lengths and are padded differently.
    backend = load_backend(tiny_model_dir, Runtime("torch", "cpu"))
    starts, ends = window_logits(backend, {name: list(dynamic[name]) for name in MODEL_INPUTS}, tokenizer.pad_token_id, 4)
    for row, (start, end) in enumerate(zip(starts, ends)):
        assert len(start) == lengths[row]
        np.testing.assert_allclose(start, start_ref[row, : lengths[row]], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(end, end_ref[row, : lengths[row]], atol=1e-5, rtol=1e-5)


def test_batches_go_longest_first_and_come_back_in_order():
    class Recording:
        name = "recording"

        def __init__(self):
            self.widths = []

        def logits(self, batch):
            self.widths.append(batch["input_ids"].shape[1])
            values = batch["input_ids"].astype(np.float32)
            return values, -values

    windows = {"input_ids": [[1] * n for n in (3, 9, 1, 7, 5)], "other": ["ignored"] * 5}
    backend = Recording()
    starts, ends = window_logits(backend, windows, pad_id=0, batch_size=2)
    assert backend.widths == [9, 5, 1]  # (9, 7), (5, 3), (1,)
    assert [len(s) for s in starts] == [3, 9, 1, 7, 5] and all((e == -s).all() for s, e in zip(starts, ends))
