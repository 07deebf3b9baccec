"""slmqa.modeling.loading: models and tokenizers from folders and adapters; one line, not a table, for a new QA head."""

from __future__ import annotations

import json
import logging

import pytest

from slmqa.errors import ConfigError
from slmqa.modeling.loading import HubOptions, is_adapter_dir, load_model, load_tokenizer, quiet_peft


def test_a_base_model_says_once_that_its_qa_head_is_new(base_model_path, caplog, capfd):
    caplog.set_level(logging.INFO, logger="slmqa")
    model = load_model(base_model_path)
    assert type(model).__name__ == "BertForQuestionAnswering"
    lines = [r.getMessage() for r in caplog.records if "initialised at random" in r.getMessage()]
    assert len(lines) == 1 and "qa_outputs" in lines[0] and base_model_path.name in lines[0]
    # transformers' own LOAD REPORT table is not printed.
    printed = capfd.readouterr()
    assert "LOAD REPORT" not in printed.out + printed.err and "LOAD REPORT" not in caplog.text


def test_a_trained_model_loads_without_a_word_about_its_head(tiny_model_dir, caplog):
    caplog.set_level(logging.INFO, logger="slmqa")
    load_model(tiny_model_dir)
    assert "initialised at random" not in caplog.text


def test_the_base_of_an_adapter_is_not_announced(tiny_model_dir, tmp_path, caplog):
    """An adapter carries its trained head (modules_to_save); its base's missing head is no news."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForQuestionAnswering

    bare = tmp_path / "bare"
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    model.bert.save_pretrained(bare)  # the encoder alone: no QA head, like a base model
    adapter = tmp_path / "adapter"
    with quiet_peft():
        peft_model = get_peft_model(AutoModelForQuestionAnswering.from_pretrained(bare),
                                    LoraConfig(task_type=TaskType.QUESTION_ANS, r=2, target_modules=["query"]))
    peft_model.save_pretrained(adapter)
    assert is_adapter_dir(adapter)
    caplog.set_level(logging.INFO, logger="slmqa")
    loaded = load_model(adapter)
    assert type(loaded).__name__.startswith("Peft")
    assert "initialised at random" not in caplog.text


def test_missing_and_unusable_models_are_config_errors(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="Cannot load the model config from"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="Cannot load the tokenizer"):
        load_tokenizer(tmp_path / "nowhere")
    not_qa = tmp_path / "not-qa"
    not_qa.mkdir()
    (not_qa / "config.json").write_text(json.dumps({"model_type": "clip"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="no question-answering model class"):
        load_model(not_qa)
    assert load_tokenizer(tiny_model_dir, HubOptions()).is_fast
