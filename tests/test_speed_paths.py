"""The fast paths change speed, never results: dynamic padding, length sorting, length-grouped
batches; int8 quantization changes results a little and must stay close."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering

import qa_predict
from args import DataTrainingArguments
from conftest import make_record, write_flat
from preprocess import Preprocess
from process import LengthGroupedBatches, longest_first, quantize_int8, window_lengths

WORDS = "the pump runs at a steady pressure while the valve stays closed during the night shift".split()


def varied_records(count: int = 9) -> list[dict]:
    """Contexts from a few words to several windows long, so that windows differ in length."""
    records = []
    for i in range(count):
        filler = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(4 + 23 * i))
        context = f"{filler}. Pump P-{i} delivers {10 + i} bar. {filler}."
        records.append(make_record(f"q{i}", context, f"What does pump P-{i} deliver?", f"{10 + i} bar"))
    return records


def eval_features(tokenizer, records, pad_to_max_length: bool):
    data_args = DataTrainingArguments(
        validation_file="inline", max_seq_length=64, doc_stride=16, pad_to_max_length=pad_to_max_length
    )
    preprocess = Preprocess(data_args, tokenizer)
    examples = preprocess.check_records("validation", "inline", records)
    return examples, preprocess.eval_features(examples)


def padded_logits(model, features) -> tuple[np.ndarray, np.ndarray]:
    """Every window padded to max_seq_length, one batch, data order: the reference recipe."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features.column_names]
    batch = {name: torch.tensor(features[name]) for name in names}
    with torch.no_grad():
        output = model(**batch)
    return output.start_logits.numpy(), output.end_logits.numpy()


@pytest.fixture
def tiny_model(tiny_model_dir):
    return AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir).eval()


def test_dynamic_padding_gives_the_same_logits_as_padding_to_max(tiny_model, tokenizer):
    records = varied_records()
    _, dynamic = eval_features(tokenizer, records, pad_to_max_length=False)
    _, padded = eval_features(tokenizer, records, pad_to_max_length=True)
    lengths = window_lengths(dynamic)
    assert len(set(lengths.tolist())) > 3 and lengths.min() < 64, "the windows must differ in length"
    assert set(window_lengths(padded).tolist()) == {64}
    # Sorted, dynamically padded batches of 4: batches mix lengths and are padded differently.
    fast = qa_predict.predict_logits(tiny_model, tokenizer, dynamic, batch_size=4)
    start_ref, end_ref = padded_logits(tiny_model, padded)
    for row, (start, end) in enumerate(fast):
        assert len(start) == lengths[row]
        np.testing.assert_allclose(start, start_ref[row, : lengths[row]], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(end, end_ref[row, : lengths[row]], atol=1e-5, rtol=1e-5)


def test_sorting_longest_first_is_undone(tokenizer):
    _, features = eval_features(tokenizer, varied_records(), pad_to_max_length=False)
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


def test_int8_quantization_keeps_logits_close(tiny_model, tokenizer):
    _, features = eval_features(tokenizer, varied_records(), pad_to_max_length=False)
    reference = qa_predict.predict_logits(tiny_model, tokenizer, features, batch_size=4)
    quantized = quantize_int8(AutoModelForQuestionAnswering.from_pretrained(tiny_model.name_or_path))
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any("quantized" in kind for kind in kinds), kinds
    approximate = qa_predict.predict_logits(quantized, tokenizer, features, batch_size=4)
    reference_all = np.concatenate([s for s, _ in reference])
    approximate_all = np.concatenate([s for s, _ in approximate])
    assert not np.array_equal(reference_all, approximate_all)  # it really is another computation
    spread = reference_all.std()
    assert np.abs(reference_all - approximate_all).max() < 0.2 * spread + 1e-3
    assert np.corrcoef(reference_all, approximate_all)[0, 1] > 0.98


def test_qa_predict_int8_flag_answers_every_question(tiny_model_dir, tmp_path):
    data = write_flat(tmp_path / "test.json", varied_records(5))
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--tuned_model", str(tiny_model_dir), "--data_file", str(data), "--quantize", "int8",
                            "--max_seq_length", "64", "--doc_stride", "16", "--output_file", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert len(report["predictions"]) == 5
    assert {"exact_match", "f1"} <= set(report["models"]["tuned"]["metrics"])


def test_trainer_uses_random_order_length_groups(tiny_model, tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from postprocess import PostProcess
    from process import QATrainer

    features = Dataset.from_dict({"input_ids": [[1] * n for n in range(1, 41)]})
    for strategy, expected in (("group_by_length", LengthGroupedBatches), ("random", torch.utils.data.RandomSampler)):
        args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy=strategy, per_device_train_batch_size=4,
                                 report_to="none", use_cpu=True)
        trainer = QATrainer(model=tiny_model, args=args, train_dataset=features, post_process=PostProcess())
        assert isinstance(trainer._get_train_sampler(), expected)


def test_compiled_models_get_few_padded_shapes(tokenizer):
    """--torch_compile pads batches to multiples of 64: at 384 tokens 6 shapes, not 48, so few recompiles."""
    from types import SimpleNamespace

    from process import Process

    lengths = range(1, 385)
    for compile_, multiple, shapes in ((False, 8, 48), (True, 64, 6)):
        process = Process.__new__(Process)
        process.tokenizer = tokenizer
        process.pad_to_max_length = False
        process.training_args = SimpleNamespace(torch_compile=compile_)
        collator = process._collator()
        padded = {collator([{"input_ids": [1] * n}])["input_ids"].shape[1] for n in lengths}
        assert padded == {multiple * k for k in range(1, shapes + 1)}


def test_slow_cpu_bf16_warning_only_without_native_bf16():
    from process import slow_cpu_bf16_warning

    assert slow_cpu_bf16_warning("--bf16 trains", native=True) is None
    warning = slow_cpu_bf16_warning("--bf16 trains", native=False)
    assert warning.startswith("--bf16 trains in bfloat16") and "use float32" in warning
