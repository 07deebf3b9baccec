"""slmqa.modeling.quantize: int8 changes the logits a little, never much."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering

from slmqa.modeling.quantize import quantize_int8


def logits(model, tokenizer) -> np.ndarray:
    batch = tokenizer(["What does pump P-1 deliver?"] * 2, ["Pump P-1 delivers 11 bar at night.", "The valve stays closed."],
                      padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        return model(**batch).start_logits.numpy()[batch["attention_mask"].numpy().astype(bool)]


def test_int8_quantization_keeps_logits_close(tiny_model_dir, tokenizer):
    reference = logits(AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir).eval(), tokenizer)
    quantized = quantize_int8(AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir))
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any("quantized" in kind for kind in kinds), kinds
    approximate = logits(quantized, tokenizer)
    assert not np.array_equal(reference, approximate)  # it really is another computation
    assert np.abs(reference - approximate).max() < 0.2 * reference.std() + 1e-3
    assert np.corrcoef(reference, approximate)[0, 1] > 0.98
