"""slmqa.inference.onnx_export: the fused graph is cached, reads like the unfused one, and falls back cleanly."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from slmqa.inference import onnx_export
from slmqa.inference.backends import OnnxBackend
from slmqa.inference.logits import pad_batch
from slmqa.inference.onnx_export import onnx_model
from slmqa.inference.runtime import Runtime
from slmqa.serving.docqa import DocumentQA, Options
from tests.document_helpers import document_folder

QUESTIONS = ["What is the torque setting of the CM-7?", "Who services the compressor?", "How fast does the F-2 fan turn?"]


@pytest.fixture
def model_copy(tmp_path, tiny_model_dir):
    """A private copy, so the ONNX cache written beside it is this test's own."""
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


@pytest.fixture(scope="module")
def batch(tokenizer):
    encoded = tokenizer(["What is the torque?", "Who services it?"],
                        ["The torque is 25 Nm.", "A certified technician services the compressor every month."])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in encoded]
    return pad_batch([{n: encoded[n][i] for n in names} for i in range(2)], names, tokenizer.pad_token_id)


def test_the_fused_export_is_cached_beside_the_model_and_reused(model_copy, monkeypatch):
    int8 = onnx_model(model_copy, quantized=True)
    fp32 = onnx_model(model_copy, quantized=False)
    assert int8.name.endswith("-fused-int8-pc.onnx") and fp32.name.endswith("-fused-fp32.onnx")
    assert int8.parent == fp32.parent == model_copy / "onnx"
    assert sorted(p.name for p in fp32.parent.iterdir()) == sorted([int8.name, fp32.name])  # no leftovers
    stamps = int8.stat().st_mtime_ns, fp32.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("fused again")

    monkeypatch.setattr(onnx_export, "fuse_onnx", refuse)
    monkeypatch.setattr(onnx_export, "quantize_onnx", refuse)
    assert onnx_model(model_copy, quantized=True) == int8 and onnx_model(model_copy, quantized=False) == fp32
    assert (int8.stat().st_mtime_ns, fp32.stat().st_mtime_ns) == stamps


def test_the_fused_graph_holds_the_fused_operators(model_copy):
    import onnx

    graph = onnx.load(str(onnx_model(model_copy, quantized=False))).graph
    kinds = {node.op_type for node in graph.node}
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization"} <= kinds


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("int8", 0.03)])
def test_fused_logits_are_close_to_the_unfused_ones(model_copy, batch, dtype, tolerance):
    runtime = Runtime("onnx", "cpu", dtype)
    fused, plain = OnnxBackend(model_copy, runtime), OnnxBackend(model_copy, runtime, fused=False)
    assert "-fused-" in fused.path.name and "-fused-" not in plain.path.name
    mask = batch["attention_mask"].astype(bool)
    for got, expected in zip(fused.logits(batch), plain.logits(batch)):
        assert got.shape == expected.shape and got.dtype == np.float32
        assert np.abs(got - expected)[mask].max() < tolerance


def test_fused_answers_equal_the_unfused_ones(tmp_path, model_copy):
    qa = DocumentQA(model_copy, document_folder(tmp_path), runtime=Runtime("onnx", "cpu"), options=Options(passages=3))
    fused = qa.ask(QUESTIONS, top_k=3)
    qa.reader.backend = OnnxBackend(model_copy, Runtime("onnx", "cpu"), fused=False)
    plain = qa.ask(QUESTIONS, top_k=3)
    for a, b in zip(fused, plain):
        assert [(x.text, x.document, x.start) for x in a.answers] == [(x.text, x.document, x.start) for x in b.answers]
        assert np.allclose([x.score for x in a.answers], [x.score for x in b.answers], atol=1e-4)


def unfused_fallback(model_copy, caplog, why: str):
    """onnx_model falls back to the unfused graph with one warning saying why, and does not retry at the next start."""
    with caplog.at_level(logging.INFO, logger="slmqa"):
        path = onnx_model(model_copy, quantized=True)
    assert path.name.endswith("-int8-pc.onnx") and "-fused-" not in path.name
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and why in warnings[0] and "Unfused ONNX graph" in warnings[0]
    assert not list(path.parent.glob("*-fused-*.onnx")) and not list(path.parent.glob("*.partial"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="slmqa"):
        assert onnx_model(model_copy, quantized=True) == path
    assert [r.levelno for r in caplog.records if "Unfused ONNX graph" in r.getMessage()] == [logging.INFO]


def test_no_optimizer_falls_back_to_the_unfused_graph(model_copy, monkeypatch, caplog):
    def missing():
        raise ImportError("no module named onnxruntime.transformers")

    monkeypatch.setattr(onnx_export, "_optimizer", missing)
    unfused_fallback(model_copy, caplog, "not available")


def test_an_architecture_the_fusions_do_not_cover_falls_back(model_copy, monkeypatch, caplog):
    monkeypatch.setattr(onnx_export, "FUSABLE", ("roberta",))
    unfused_fallback(model_copy, caplog, "do not cover model_type 'bert'")


def test_a_fused_graph_that_changes_the_logits_is_not_kept(model_copy, monkeypatch, caplog):
    monkeypatch.setattr(onnx_export, "FUSION_TOLERANCE", -1.0)  # any difference, even 0, counts as a change
    unfused_fallback(model_copy, caplog, "logits differ")


def test_an_optimizer_that_fails_falls_back(model_copy, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("unexpected graph")

    monkeypatch.setattr(onnx_export, "_optimizer", lambda: broken)
    unfused_fallback(model_copy, caplog, "optimizer failed (RuntimeError: unexpected graph)")
