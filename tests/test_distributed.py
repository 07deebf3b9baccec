"""Two processes (torchrun / accelerate launch, gloo on CPU) give the same evaluation as one (run in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_record, run_qa, write_flat

pytestmark = pytest.mark.subprocess


def launch(launcher: list[str], args: list, log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, "run_qa.py", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.fixture
def uneven_dataset(tmp_path) -> dict[str, Path]:
    """An odd number of examples with windows of varied counts: the last batch is uneven across ranks."""
    data = {}
    for split, count in (("train", 24), ("validation", 13)):
        records = []
        for i in range(count):
            filler = " ".join(f"Line {j} of the manual covers part {j}." for j in range(i % 4 * 6))
            context = f"{filler} The pump P-{i} runs at {100 + i} rpm. The fan F-{i} runs at {300 + i} rpm."
            records.append(make_record(f"{split}-{i}", context, f"How fast does pump P-{i} run?", f"{100 + i} rpm"))
        data[split] = write_flat(tmp_path / f"{split}.json", records)
    return data


def test_two_processes_match_one(tiny_model_dir, uneven_dataset, tmp_path):
    common = ["--max_seq_length", 64, "--doc_stride", 16, "--per_device_eval_batch_size", 3, "--report_to", "none",
              "--disable_tqdm", "true", "--validation_file", uneven_dataset["validation"]]
    two = tmp_path / "two"
    launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"],
           ["--model_name_or_path", tiny_model_dir, "--train_file", uneven_dataset["train"], "--output_dir", two,
            "--max_steps", 4, "--per_device_train_batch_size", 4, "--eval_strategy", "steps", "--eval_steps", 2,
            "--save_steps", 2, "--load_best_model_at_end", "--metric_for_best_model", "eval_f1", *common],
           tmp_path / "two.log")
    log = (tmp_path / "two.log").read_text()
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in log  # really two ranks
    assert log.count("***** eval metrics *****") == 1  # only the main process reports
    assert "processes: 2" in log

    one = tmp_path / "one"
    run_qa("--model_name_or_path", two, "--do_eval", "--output_dir", one, *common)
    two_eval = json.loads((two / "eval_results.json").read_text())
    one_eval = json.loads((one / "eval_results.json").read_text())
    for key in ("eval_exact_match", "eval_f1", "eval_examples", "eval_features"):
        assert two_eval[key] == one_eval[key], key
    two_predictions = json.loads((two / "eval_predictions.json").read_text())
    one_predictions = json.loads((one / "eval_predictions.json").read_text())
    assert two_predictions == one_predictions
    assert sorted(two_predictions) == sorted(f"validation-{i}" for i in range(13))

    via_accelerate = tmp_path / "accelerate"
    launch([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"],
           ["--model_name_or_path", two, "--do_eval", "--output_dir", via_accelerate, *common], tmp_path / "acc.log")
    assert json.loads((via_accelerate / "eval_predictions.json").read_text()) == one_predictions
    assert "processes: 2" in (tmp_path / "acc.log").read_text()


def test_two_processes_with_grouped_training_sampler_match_one(tiny_model_dir, uneven_dataset, tmp_path):
    """group_by_length is a training option: it must not reorder the ranks' evaluation shards."""
    common = ["--model_name_or_path", tiny_model_dir, "--do_eval", "--validation_file", uneven_dataset["validation"],
              "--max_seq_length", 64, "--doc_stride", 16, "--per_device_eval_batch_size", 3, "--report_to", "none",
              "--disable_tqdm", "true"]
    two = tmp_path / "two"
    launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"],
           [*common, "--output_dir", two, "--train_sampling_strategy", "group_by_length"], tmp_path / "two.log")
    assert "processes: 2" in (tmp_path / "two.log").read_text()
    one = tmp_path / "one"
    run_qa(*common, "--output_dir", one)
    for name in ("eval_predictions.json", "eval_nbest_predictions.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
