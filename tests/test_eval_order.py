"""Evaluation order: predictions never depend on the training sampler (issue: grouped eval batches)."""

from __future__ import annotations

import json

from conftest import make_record, write_flat
from test_run_qa import common_args, run_qa


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
