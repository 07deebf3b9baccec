"""LoRA adapters for a question-answering model, with targets chosen per architecture.

The QA head is new and must be trained and saved in full (`modules_to_save`), not adapted.
"""

from __future__ import annotations

import logging

from slmqa.modeling.loading import quiet_peft

logger = logging.getLogger(__name__)

# LoRA targets by `config.model_type` where this project chooses otherwise than peft's own
# mapping (which adapts query and value only, and has no entry for several encoders): all
# three attention projections. Other types take peft's mapping, else every linear layer.
LORA_TARGET_OVERRIDES = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "xlm-roberta": ["query", "key", "value"],
    "camembert": ["query", "key", "value"],
    "electra": ["query", "key", "value"],
    "albert": ["query", "key", "value"],
    "mobilebert": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
}
ALL_LINEAR = "all-linear"  # peft's name for every linear layer except the output head


def lora_targets() -> dict[str, list[str]]:
    """Default LoRA target modules by model type: peft's mapping, with this project's overrides."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return {**TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, **LORA_TARGET_OVERRIDES}


def lora_target_modules(model, requested: list[str] | None = None) -> list[str] | str:
    """`requested` when given, else the default for the model's type, else every linear layer."""
    if requested:
        return list(requested)
    model_type = model.config.model_type
    targets = lora_targets().get(model_type)
    if targets is None:
        logger.info("LoRA: no default target modules for model type '%s'; adapting %s.", model_type, ALL_LINEAR)
        return ALL_LINEAR
    return list(targets)


def qa_head_names(model) -> list[str]:
    """The new QA head (a Linear to start/end logits): `qa_outputs` in most models, `classifier` in ModernBERT."""
    import torch

    return [
        name for name, module in model.named_children() if isinstance(module, torch.nn.Linear) and module.out_features == 2
    ]


def add_lora(
    model,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    target_modules: list[str] | None = None,
    bias: str = "none",
):
    """Wrap the model in LoRA adapters; the new QA head is always trained and saved in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.QUESTION_ANS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_modules(model, target_modules),
        bias=bias,
        modules_to_save=qa_head_names(model),
    )
    with quiet_peft():
        model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return model
