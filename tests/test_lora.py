"""LoRA: default targets per architecture, the QA head trained and saved, adapters that reload exactly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering

from args import LoraArguments
from process import add_lora, load_model, lora_targets
from test_run_qa import common_args, run_qa

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100}
ARCHITECTURES = {
    "bert": {},
    "roberta": {},
    "electra": {"embedding_size": 32},
    "albert": {"embedding_size": 16},
    "mobilebert": {"embedding_size": 16, "intra_bottleneck_size": 32, "true_hidden_size": 32, "num_feedforward_networks": 1},
    "deberta-v2": {},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
}


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_default_targets_per_architecture(model_type):
    config = AutoConfig.for_model(model_type, **TINY, **ARCHITECTURES[model_type])
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), LoraArguments(use_lora=True, lora_r=2))
    adapted = {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == set(lora_targets()[model_type])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("qa_outputs" in name for name in trainable)
    assert all("lora_" in name or "qa_outputs" in name for name in trainable)


def test_unknown_architecture_adapts_every_linear_layer():
    config = AutoConfig.for_model("bert", **TINY)
    model = AutoModelForQuestionAnswering.from_config(config)
    model.config.model_type = "made-up"
    adapted = add_lora(model, LoraArguments(use_lora=True))
    assert {n.split(".")[-1] for n, m in adapted.named_modules() if hasattr(m, "lora_A")} == {"query", "key", "value", "dense"}
    model = AutoModelForQuestionAnswering.from_config(config)
    explicit = add_lora(model, LoraArguments(use_lora=True, lora_target_modules=["query"]))
    assert {n.split(".")[-1] for n, m in explicit.named_modules() if hasattr(m, "lora_A")} == {"query"}


def test_modernbert_gets_every_linear_layer_and_its_classifier_head_in_full():
    """peft has no ModernBERT mapping; its QA head is `classifier`, not `qa_outputs`."""
    config = AutoConfig.for_model(
        "modernbert", **TINY, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2
    )
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), LoraArguments(use_lora=True, lora_r=2))
    assert {n.split(".")[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")} >= {"Wqkv", "Wo", "Wi"}
    head = {name for name, p in model.named_parameters() if p.requires_grad and "lora_" not in name}
    assert head == {f"base_model.model.classifier.modules_to_save.default.{w}" for w in ("weight", "bias")}


def test_trainable_parameter_count():
    config = AutoConfig.for_model("bert", **TINY)
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), LoraArguments(use_lora=True, lora_r=2))
    # Per layer: query, key, value each get A (2 x 32) and B (32 x 2) = 128; 2 layers -> 768.
    # The QA head is trained in full: 32 x 2 weights + 2 biases = 66.
    assert model.get_nb_trainable_parameters()[0] == 768 + 66


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
    from process import is_adapter_dir
    from args import ModelArguments

    assert is_adapter_dir(str(out))
    adapter_model = load_model(ModelArguments(model_name_or_path=str(out)), None, is_trainable=False).eval()
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

    from conftest import ROOT

    relative_base = os.path.relpath(tiny_model_dir, ROOT)
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
