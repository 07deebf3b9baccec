"""Stage 2 (process.py): the QATrainer's samplers and collators, and evaluation order that never depends on them."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForQuestionAnswering

from slmqa.training.sampling import LengthGroupedBatches
from tests.helpers import common_args, make_record, run_qa, write_flat


def test_trainer_uses_random_order_length_groups(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from postprocess import PostProcess
    from process import QATrainer
    from tests.helpers import reset_accelerate

    tiny_model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    features = Dataset.from_dict({"input_ids": [[1] * n for n in range(1, 41)]})
    for strategy, expected in (("group_by_length", LengthGroupedBatches), ("random", torch.utils.data.RandomSampler)):
        args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy=strategy, per_device_train_batch_size=4,
                                 report_to="none", use_cpu=True)
        trainer = QATrainer(model=tiny_model, args=args, train_dataset=features, post_process=PostProcess())
        assert isinstance(trainer._get_train_sampler(), expected)
        reset_accelerate()


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


def varied_v2_data(tmp_path) -> dict:
    """Contexts from one to several windows long, some questions unanswerable: grouping reorders them."""
    records = []
    for i in range(18):
        filler = " ".join(f"Section {j} lists spare part S-{j}." for j in range(i % 6 * 4))
        context = f"{filler} Unit {i} runs at {100 + i} rpm. Its filter is code F{i}."
        if i % 4 == 0:
            records.append(make_record(f"r{i}", context, "Who built the unit?", None, is_impossible=True))
        else:
            records.append(make_record(f"r{i}", context, f"How fast does unit {i} run?", f"{100 + i} rpm"))
    return {split: write_flat(tmp_path / f"{split}.json", records) for split in ("train", "validation", "test")}


def test_grouped_training_does_not_reorder_evaluation(tiny_model_dir, tmp_path):
    data = varied_v2_data(tmp_path)
    grouped = tmp_path / "grouped"
    run_qa(*common_args(tiny_model_dir, data, grouped), "--version_2_with_negative", "--max_steps", 6,
           "--save_strategy", "no", "--per_device_eval_batch_size", 3,
           "--train_sampling_strategy", "group_by_length")
    again = tmp_path / "again"
    run_qa("--model_name_or_path", grouped, "--validation_file", data["validation"], "--test_file", data["test"],
           "--output_dir", again, "--max_seq_length", 64, "--doc_stride", 16, "--per_device_eval_batch_size", 3,
           "--version_2_with_negative", "--report_to", "none", "--disable_tqdm", "true")
    for name in ("eval_predictions.json", "eval_null_odds.json", "predict_predictions.json", "eval_nbest_predictions.json"):
        assert (grouped / name).read_bytes() == (again / name).read_bytes(), name
    features = json.loads((grouped / "eval_results.json").read_text())["eval_features"]
    assert features > 18  # several windows per question: a reordering would have shown
