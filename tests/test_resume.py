"""Crash safety: a run killed with SIGKILL resumes from its last complete checkpoint and ends where
an uninterrupted run ends; changed arguments are caught before resuming."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, common_args, run_qa


def train_args(model, data, out) -> list:
    return [*common_args(model, data, out), "--do_train", "--do_eval", "--max_steps", 30, "--save_steps", 5,
            "--learning_rate", 5e-4, "--logging_steps", 5]


@pytest.mark.subprocess
def test_sigkill_mid_training_then_resume_matches_uninterrupted(tiny_model_dir, small_dataset, tmp_path):
    reference = tmp_path / "reference"
    run_qa(*train_args(tiny_model_dir, small_dataset, reference))

    out = tmp_path / "killed"
    command = [sys.executable, "run_qa.py", *map(str, train_args(tiny_model_dir, small_dataset, out))]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint-5" / "trainer_state.json").is_file():
        assert process.poll() is None, "run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (out / "eval_results.json").exists()

    output = run_qa(*train_args(tiny_model_dir, small_dataset, out))
    assert "Resuming training from" in output
    resumed = json.loads((out / "trainer_state.json").read_text())
    uninterrupted = json.loads((reference / "trainer_state.json").read_text())
    assert resumed["global_step"] == uninterrupted["global_step"] == 30

    def losses(state: dict) -> list[tuple[int, float]]:
        return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]

    # On the CPU a resumed run repeats the uninterrupted one exactly: same batches, same RNG.
    assert len(losses(uninterrupted)) == 6 and losses(resumed) == losses(uninterrupted)
    assert (out / "eval_predictions.json").read_text() == (reference / "eval_predictions.json").read_text()
    scores = [json.loads((run / "eval_results.json").read_text()) for run in (out, reference)]
    assert [(s["eval_exact_match"], s["eval_f1"]) for s in scores[:1]] == [(s["eval_exact_match"], s["eval_f1"]) for s in scores[1:]]


def test_changed_arguments_are_reported_before_resuming(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    base = [*common_args(tiny_model_dir, small_dataset, out), "--do_train", "--max_steps", 2, "--save_steps", 2]
    run_qa(*base)
    output = run_qa(*base, "--max_seq_length", 96, "--max_steps", 4, expect=2)
    assert "arguments changed" in output and "max_seq_length: 64 in the checkpointed run, 96 now" in output
    output = run_qa(*base, "--use_lora", "--max_steps", 4, expect=2)
    assert "use_lora: False in the checkpointed run, True now" in output
    assert "Traceback" not in output
    # What the skipped batches of a resumed run stand for: samples per step, order, data.
    output = run_qa(*base, "--per_device_train_batch_size", 2, "--gradient_accumulation_steps", 2, "--seed", 7,
                    "--max_train_samples", 6, "--max_steps", 4, expect=2)
    for change in ("seed: 1 in the checkpointed run, 7 now", "max_train_samples: None in the checkpointed run, 6 now"):
        assert change in output
    assert "samples_per_optimizer_step" not in output  # 2 x 2 x 1 == 4 x 1 x 1: same samples per step
    output = run_qa(*base, "--per_device_train_batch_size", 8, "--max_steps", 4, expect=2)
    assert "samples_per_optimizer_step: 4 in the checkpointed run, 8 now" in output
    train_file = small_dataset["train"]
    train_file.write_text(train_file.read_text().replace("hall 1.", "hall one."), encoding="utf-8")
    output = run_qa(*base, "--max_steps", 4, expect=2)
    assert "train_file_sha256:" in output
    run_qa(*base, "--max_steps", 4, "--overwrite_output_dir")
