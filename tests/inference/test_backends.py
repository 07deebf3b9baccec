"""slmqa.inference.backends / onnx_export: every backend and dtype gives the same kind of logits, close to float32's."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from slmqa.inference import backends
from slmqa.inference.backends import OnnxBackend, load_backend
from slmqa.inference.logits import pad_batch
from slmqa.inference.onnx_export import onnx_model
from slmqa.inference.runtime import Runtime
from slmqa.serving.docqa import DocumentQA, Options
from tests.document_helpers import document_folder


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


# int8: about 0.003 measured on this model, whose logits are within ±0.25; bfloat16 keeps 8 bits of mantissa.
@pytest.mark.parametrize(
    "backend, dtype, tolerance",
    [("onnx", "float32", 1e-5), ("onnx", "int8", 0.03), ("torch", "int8", 0.03), ("torch", "bfloat16", 0.03)],
)
def test_backends_agree_with_torch_fp32(model_copy, batch, backend, dtype, tolerance):
    reference_start, reference_end = load_backend(model_copy, Runtime("torch", "cpu")).logits(batch)
    start, end = load_backend(model_copy, Runtime(backend, "cpu", dtype)).logits(batch)
    assert start.shape == reference_start.shape == batch["input_ids"].shape and start.dtype == np.float32
    mask = batch["attention_mask"].astype(bool)
    assert np.abs(start - reference_start)[mask].max() < tolerance
    assert np.abs(end - reference_end)[mask].max() < tolerance


def test_onnx_export_is_cached_beside_the_model(model_copy):
    first = onnx_model(model_copy, quantized=True)
    stamp = first.stat().st_mtime_ns
    assert onnx_model(model_copy, quantized=True) == first and first.stat().st_mtime_ns == stamp
    assert first.parent == model_copy / "onnx" and not list(first.parent.glob("*.partial"))


def test_torch_backend_runs_in_the_asked_dtype_and_warns_when_bf16_is_emulated(model_copy, batch, monkeypatch, caplog):
    for native in (True, False):
        monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda native=native: native)
        caplog.clear()
        backend = load_backend(model_copy, Runtime("torch", "cpu", "bfloat16"))
        assert next(backend.model.parameters()).dtype == torch.bfloat16
        start, _ = backend.logits(batch)
        assert start.dtype == np.float32  # decoding always sees float32
        warned = any("emulated and many times slower" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert warned == (not native)


def test_a_base_models_new_head_is_seeded(base_model_path, batch):
    """The same seed gives the same untrained head, so a base model's answers are reproducible."""
    first = load_backend(base_model_path, Runtime("torch", "cpu"), seed=5).logits(batch)[0]
    again = load_backend(base_model_path, Runtime("torch", "cpu"), seed=5).logits(batch)[0]
    other = load_backend(base_model_path, Runtime("torch", "cpu"), seed=6).logits(batch)[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_document_qa_on_onnx_int8(tmp_path, model_copy):
    qa = DocumentQA(model_copy, document_folder(tmp_path), runtime=Runtime("onnx", "cpu", "int8"), options=Options(passages=2))
    reading = qa.ask(["What is the torque setting of the CM-7?"], top_k=2)[0]
    assert qa.describe()["backend"] == "onnx-int8" and reading.answers
    for answer in reading.answers:
        assert qa.documents[answer.document].text[answer.start : answer.end] == answer.text


def test_the_runtimes_threads_reach_onnx_runtime_and_torch(model_copy):
    assert OnnxBackend(model_copy, Runtime("onnx", "cpu", threads=1)).session.get_session_options().intra_op_num_threads == 1
    before = torch.get_num_threads()
    try:
        load_backend(model_copy, Runtime("torch", "cpu", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
