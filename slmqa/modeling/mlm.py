"""The masked-language-model view of a QA encoder, and the QA model it hands back.

all-MiniLM-L6-v2 is a sentence encoder and a stage-one model is a QA model: neither has an
MLM head, so one is initialised here (the output layer tied to the word embeddings, as in
BERT; the transform before it starts as the identity, so the first predictions are already
"the nearest word embedding" rather than noise pushed back into the encoder). What training
produces is saved as a question-answering model: the start model's QA head (stage one's
skill) on the domain-trained encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from slmqa.errors import ConfigError
from slmqa.modeling.loading import HubOptions, load_model

logger = logging.getLogger("slmqa.mlm")


def load_mlm_model(name_or_path: str | Path, hub: HubOptions = HubOptions(), config_name: str | None = None):
    """The encoder of `name_or_path` with an MLM head (its own if it has one, else a new one)."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    name = str(name_or_path)
    config = AutoConfig.from_pretrained(config_name or name, **hub.kwargs())
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(name, config=config, output_loading_info=True, **hub.kwargs())
    except ValueError as err:
        raise ConfigError(f"'{name}' ({config.model_type}) has no masked-language-model class in transformers: {err}") from None
    missing = sorted(info.get("missing_keys", ()))
    encoder_prefix = f"{model.base_model_prefix}."
    if any(key.startswith(encoder_prefix) for key in missing):
        raise ConfigError(f"'{name}' lacks encoder weights for masked-language modelling: {missing[:5]} ...")
    if missing:
        if _identity_transform(model):
            logger.info("%s has no MLM head: a new one is initialised (transform = identity, output tied to the word "
                        "embeddings).", Path(name).name or name)  # fmt: skip
        else:
            logger.info("%s has no MLM head: a new one is initialised at random.", Path(name).name or name)
    return model


def _identity_transform(model) -> bool:
    """BERT-style heads (dense, activation, LayerNorm, decoder): start the dense layer as the identity."""
    import torch

    head = getattr(getattr(model, "cls", None), "predictions", None)
    dense = getattr(getattr(head, "transform", None), "dense", None)
    if dense is None or dense.weight.shape[0] != dense.weight.shape[1]:
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.weight.shape[0]))
        dense.bias.zero_()
    return True


def qa_model_with_encoder(mlm_model, start: str | Path, hub: HubOptions = HubOptions(), config_name: str | None = None):
    """The start model as a QA model (its QA head, or a new one for a base model) carrying mlm_model's encoder."""
    qa_model = load_model(start, hub, config_name=config_name)
    if hasattr(qa_model, "peft_config"):
        raise ConfigError(f"{start} is a LoRA adapter: merge it first (--merge_lora) to train its encoder on text.")
    result = qa_model.base_model.load_state_dict(mlm_model.base_model.state_dict(), strict=False)
    if result.missing_keys:
        raise ConfigError(f"The trained encoder does not fit {start}'s QA model: missing {result.missing_keys[:5]}")
    return qa_model
