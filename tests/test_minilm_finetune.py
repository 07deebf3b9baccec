"""The point of the tool, checked on the real offline MiniLM: a short CPU fine-tune on a mock
domain beats the base model by a wide margin on held-out questions."""

from __future__ import annotations

import json

import pytest

import qa_predict
from mock_dataset import generate_dataset, write_dataset
from preprocess import Preprocess
from args import DataTrainingArguments
from test_run_qa import run_qa


@pytest.mark.parametrize("fmt", ["json", "jsonl", "squad"])
def test_every_mock_format_loads_through_the_pipeline(fmt, tmp_path, tokenizer):
    splits = generate_dataset("clinical_trial", {"train": 40, "validation": 10}, seed=3, impossible_ratio=0.3)
    paths = write_dataset(splits, tmp_path, fmt=fmt)
    args = DataTrainingArguments(train_file=str(paths["train"]), validation_file=str(paths["validation"]),
                                 version_2_with_negative=True, max_bad_fraction=0.0)
    loaded = Preprocess(args, tokenizer).load(["train", "validation"])
    for split, records in splits.items():
        assert list(loaded[split]["id"]) == [r["id"] for r in records]
        assert [a["answer_start"] for a in loaded[split]["answers"]] == [r["answers"]["answer_start"] for r in records]


@pytest.mark.slow
def test_short_finetune_beats_base_by_30_f1(base_model_path, tmp_path):
    splits = generate_dataset("equipment_manual", {"train": 320, "validation": 60}, seed=11, long_context_ratio=0.0)
    paths = write_dataset(splits, tmp_path / "data")
    tuned = tmp_path / "tuned"
    run_qa("--model_name_or_path", base_model_path, "--train_file", paths["train"], "--output_dir", tuned,
           "--do_train", "--max_seq_length", 192, "--doc_stride", 64, "--num_train_epochs", 3,
           "--learning_rate", 3e-4, "--warmup_steps", 10, "--per_device_train_batch_size", 8,
           "--save_strategy", "no", "--report_to", "none", "--seed", 7, "--disable_tqdm", "true",
           timeout=1800)  # about 2 minutes on an idle 2-core CPU; generous for a loaded one
    report_path = tmp_path / "comparison.json"
    assert qa_predict.main(["--base_model", str(base_model_path), "--tuned_model", str(tuned), "--data_file",
                            str(paths["validation"]), "--output_file", str(report_path), "--max_seq_length", "192",
                            "--doc_stride", "64"]) == 0
    models = json.loads(report_path.read_text())["models"]
    base_f1, tuned_f1 = models["base"]["metrics"]["f1"], models["tuned"]["metrics"]["f1"]
    assert tuned_f1 >= base_f1 + 30, (base_f1, tuned_f1)
