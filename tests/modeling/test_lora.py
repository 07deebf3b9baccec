"""slmqa.modeling.lora: default targets per architecture, the QA head trained in full."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, AutoModelForQuestionAnswering

from slmqa.modeling.lora import add_lora, lora_targets

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
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), r=2)
    adapted = {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == set(lora_targets()[model_type])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("qa_outputs" in name for name in trainable)
    assert all("lora_" in name or "qa_outputs" in name for name in trainable)


def test_unknown_architecture_adapts_every_linear_layer():
    config = AutoConfig.for_model("bert", **TINY)
    model = AutoModelForQuestionAnswering.from_config(config)
    model.config.model_type = "made-up"
    adapted = add_lora(model)
    assert {n.split(".")[-1] for n, m in adapted.named_modules() if hasattr(m, "lora_A")} == {"query", "key", "value", "dense"}
    model = AutoModelForQuestionAnswering.from_config(config)
    explicit = add_lora(model, target_modules=["query"])
    assert {n.split(".")[-1] for n, m in explicit.named_modules() if hasattr(m, "lora_A")} == {"query"}


def test_modernbert_gets_every_linear_layer_and_its_classifier_head_in_full():
    """peft has no ModernBERT mapping; its QA head is `classifier`, not `qa_outputs`."""
    config = AutoConfig.for_model(
        "modernbert", **TINY, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2
    )
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), r=2)
    assert {n.split(".")[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")} >= {"Wqkv", "Wo", "Wi"}
    head = {name for name, p in model.named_parameters() if p.requires_grad and "lora_" not in name}
    assert head == {f"base_model.model.classifier.modules_to_save.default.{w}" for w in ("weight", "bias")}


def test_trainable_parameter_count():
    config = AutoConfig.for_model("bert", **TINY)
    model = add_lora(AutoModelForQuestionAnswering.from_config(config), r=2)
    # Per layer: query, key, value each get A (2 x 32) and B (32 x 2) = 128; 2 layers -> 768.
    # The QA head is trained in full: 32 x 2 weights + 2 biases = 66.
    assert model.get_nb_trainable_parameters()[0] == 768 + 66
