"""backends.py / onnx_export.py: every backend gives the reader the same kind of logits."""

from __future__ import annotations

import numpy as np
import pytest

from backends import BACKENDS, load_backend
from reader import pad_batch


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory, tiny_model_dir):
    """A private copy, so the ONNX cache written beside it is this module's own."""
    import shutil

    target = tmp_path_factory.mktemp("backend-model") / "model"
    shutil.copytree(tiny_model_dir, target)
    return target


@pytest.fixture(scope="module")
def batch(tokenizer):
    encoded = tokenizer(["What is the torque?", "Who services it?"],
                        ["The torque is 25 Nm.", "A certified technician services the compressor every month."])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in encoded]
    rows = [{n: encoded[n][i] for n in names} for i in range(2)]
    return pad_batch(rows, names, tokenizer.pad_token_id)


# int8: about 0.003 measured on this model, whose logits are within ±0.25.
@pytest.mark.parametrize("name, tolerance", [("onnx", 1e-5), ("onnx-int8", 0.03), ("torch-int8", 0.03)])
def test_backends_agree_with_torch_fp32(model_copy, batch, name, tolerance):
    reference_start, reference_end = load_backend(model_copy, "torch").logits(batch)
    start, end = load_backend(model_copy, name).logits(batch)
    assert start.shape == reference_start.shape == batch["input_ids"].shape and start.dtype == np.float32
    mask = batch["attention_mask"].astype(bool)
    assert np.abs(start - reference_start)[mask].max() < tolerance
    assert np.abs(end - reference_end)[mask].max() < tolerance


def test_onnx_export_is_cached_beside_the_model(model_copy):
    from onnx_export import onnx_model

    first = onnx_model(model_copy, quantized=True)
    stamp = first.stat().st_mtime_ns
    assert onnx_model(model_copy, quantized=True) == first and first.stat().st_mtime_ns == stamp
    assert first.parent == model_copy / "onnx" and not list(first.parent.glob("*.partial"))


def test_unknown_backend_is_refused(model_copy):
    with pytest.raises(ValueError, match="Unknown backend"):
        load_backend(model_copy, "tensorrt")
    assert set(BACKENDS) == {"torch", "torch-int8", "onnx", "onnx-int8"}


def test_document_qa_on_onnx_int8(tmp_path, model_copy):
    from docqa import DocumentQA, Options
    from docs_helpers import document_folder

    qa = DocumentQA(model_copy, document_folder(tmp_path), backend="onnx-int8", options=Options(passages=2))
    reading = qa.ask(["What is the torque setting of the CM-7?"], top_k=2)[0]
    assert qa.describe()["backend"] == "onnx-int8" and reading.answers
    for answer in reading.answers:
        assert qa.documents[answer.document].text[answer.start : answer.end] == answer.text
