"""The point of the tool, checked on the real offline MiniLM: a short CPU fine-tune on a mock
domain beats the base model by a wide margin on held-out questions."""

from __future__ import annotations

import json

import pytest

import qa_predict
from slmqa.mock.generate import generate_dataset, write_dataset
from tests.helpers import run_main, run_qa


@pytest.mark.slow
def test_short_finetune_beats_base_by_30_f1(base_model_path, tmp_path):
    splits = generate_dataset("equipment_manual", {"train": 320, "validation": 60}, seed=11, long_context_ratio=0.0)
    paths = write_dataset(splits, tmp_path / "data")
    tuned = tmp_path / "tuned"
    run_qa("--model_name_or_path", base_model_path, "--train_file", paths["train"], "--output_dir", tuned,
           "--do_train", "--max_seq_length", 192, "--doc_stride", 64, "--num_train_epochs", 3,
           "--learning_rate", 3e-4, "--warmup_steps", 10, "--per_device_train_batch_size", 8,
           "--save_strategy", "no", "--report_to", "none", "--seed", 7, "--disable_tqdm", "true")
    report_path = tmp_path / "comparison.json"
    run_main(qa_predict.main, ["--base_model", base_model_path, "--tuned_model", tuned, "--data_file", paths["validation"],
                               "--output_file", report_path, "--max_seq_length", "192", "--doc_stride", "64"])
    models = json.loads(report_path.read_text())["models"]
    base_f1, tuned_f1 = models["base"]["metrics"]["f1"], models["tuned"]["metrics"]["f1"]
    assert tuned_f1 >= base_f1 + 30, (base_f1, tuned_f1)
