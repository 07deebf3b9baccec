"""Crash safety: a run killed with SIGKILL resumes from its last complete checkpoint and ends where
an uninterrupted run ends; changed arguments are caught before resuming."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import ROOT
from test_run_qa import common_args, run_qa


def train_args(model, data, out) -> list:
    return [*common_args(model, data, out), "--do_train", "--do_eval", "--max_steps", 30, "--save_steps", 5,
            "--learning_rate", 5e-4, "--logging_steps", 5]


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
    f1_resumed = json.loads((out / "eval_results.json").read_text())["eval_f1"]
    f1_reference = json.loads((reference / "eval_results.json").read_text())["eval_f1"]
    assert abs(f1_resumed - f1_reference) <= 0.5


def test_changed_arguments_are_reported_before_resuming(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    base = [*common_args(tiny_model_dir, small_dataset, out), "--do_train", "--max_steps", 2, "--save_steps", 2]
    run_qa(*base)
    output = run_qa(*base, "--max_seq_length", 96, "--max_steps", 4, expect=2)
    assert "arguments changed" in output and "max_seq_length: 64 in the checkpointed run, 96 now" in output
    output = run_qa(*base, "--use_lora", "--max_steps", 4, expect=2)
    assert "use_lora: False in the checkpointed run, True now" in output
    assert "Traceback" not in output
