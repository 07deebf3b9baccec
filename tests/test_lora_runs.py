"""LoRA training through run_qa.py: the adapter with its trained QA head, merging, resuming, loading from anywhere."""

from __future__ import annotations

import json
import shutil

import torch
from transformers import AutoModelForQuestionAnswering

from slmqa.modeling.loading import is_adapter_dir, load_model
from tests.helpers import common_args, run_qa


def test_lora_run_saves_adapter_with_head_merges_and_resumes(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "lora"
    args = [*common_args(tiny_model_dir, small_dataset, out), "--use_lora", "--lora_r", 4, "--merge_lora",
            "--max_steps", 4, "--save_steps", 2, "--eval_strategy", "steps", "--eval_steps", 4]
    run_qa(*args)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert any("qa_outputs" in k for k in keys) and any("lora_A" in k for k in keys)
    results = json.loads((out / "all_results.json").read_text())
    assert "eval_f1" in results and "predict_f1" in results

    # The adapter reloads to the same logits as the merged full model.
    assert is_adapter_dir(str(out))
    adapter_model = load_model(out).eval()
    merged = AutoModelForQuestionAnswering.from_pretrained(out / "merged").eval()
    inputs = {"input_ids": torch.tensor([[101, 2054, 2003, 102, 1996, 4165, 102]])}
    with torch.no_grad():
        a, b = adapter_model(**inputs), merged(**inputs)
    assert torch.allclose(a.start_logits, b.start_logits, atol=1e-5)
    assert torch.allclose(a.end_logits, b.end_logits, atol=1e-5)

    # Resume a LoRA run from its checkpoint after losing the last one.
    shutil.rmtree(out / "checkpoint-4")
    (out / "adapter_model.safetensors").unlink()
    output = run_qa(*args)
    assert "global step 2" in output
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    assert (out / "adapter_model.safetensors").is_file()


def test_merge_leaves_evaluation_unmerged_and_adapter_loads_from_anywhere(tiny_model_dir, small_dataset, tmp_path):
    """--merge_lora merges a reloaded copy: the run evaluates exactly the model it would without it.

    The base model is given as a path relative to the working directory; the adapter must
    still load from another one.
    """
    import os
    import subprocess
    import sys

    relative_base = os.path.relpath(tiny_model_dir, os.getcwd())
    runs = {}
    for name, extra in (("plain", []), ("merged", ["--merge_lora"])):
        out = tmp_path / name
        args = common_args(relative_base, small_dataset, out)
        run_qa(*args, "--use_lora", "--lora_r", 4, "--max_steps", 3, "--save_strategy", "no", *extra)
        runs[name] = out
    for file in ("eval_nbest_predictions.json", "predict_nbest_predictions.json"):
        assert (runs["plain"] / file).read_bytes() == (runs["merged"] / file).read_bytes(), file
    assert (runs["merged"] / "merged" / "model.safetensors").is_file()
    # The merged copy carries the settings qa_predict.py reads.
    assert (runs["merged"] / "merged" / "qa_settings.json").read_text() == (runs["merged"] / "qa_settings.json").read_text()

    base = json.loads((runs["plain"] / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert os.path.isabs(base) and os.path.samefile(base, tiny_model_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    load = ("import sys; from peft import AutoPeftModelForQuestionAnswering as M; "
            "m = M.from_pretrained(sys.argv[1]); print(type(m).__name__)")
    result = subprocess.run([sys.executable, "-c", load, str(runs["plain"])], cwd=elsewhere, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
