"""Argument parsing: JSON, command line, JSON plus overrides, and loud failures."""

from __future__ import annotations

import json

import pytest

import run_qa
from args import parse_args
from slmqa.errors import ConfigError
from tests.helpers import run_qa as run_qa_in_process


def write_config(tmp_path, **values):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"train_file": "t.json", "output_dir": str(tmp_path / "out"), **values}), encoding="utf-8")
    return str(path)


def test_json_file(tmp_path):
    model, data, lora, training = parse_args([write_config(tmp_path, doc_stride=64, lora_dropout=0.05, learning_rate=1e-4)])
    assert data.train_file == "t.json" and data.doc_stride == 64
    assert lora.lora_dropout == 0.05 and isinstance(lora.lora_dropout, float)
    assert training.learning_rate == 1e-4 and training.output_dir == str(tmp_path / "out")
    assert model.model_name_or_path == "models/all-MiniLM-L6-v2"


def test_command_line(tmp_path):
    _, data, lora, training = parse_args(
        ["--train_file", "a.json", "--max_seq_length", "256", "--use_lora", "--lora_dropout", "0.2",
         "--lora_target_modules", "query", "value", "--output_dir", str(tmp_path), "--num_train_epochs", "2"]
    )
    assert data.max_seq_length == 256 and lora.use_lora and lora.lora_dropout == 0.2
    assert lora.lora_target_modules == ["query", "value"] and training.num_train_epochs == 2


def test_command_line_overrides_json(tmp_path):
    config = write_config(tmp_path, num_train_epochs=5, doc_stride=64)
    _, data, _, training = parse_args([config, "--num_train_epochs", "1", "--version_2_with_negative"])
    assert training.num_train_epochs == 1 and data.doc_stride == 64 and data.version_2_with_negative


def test_unknown_json_key_is_an_error_with_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'num_train_epoch' \(did you mean 'num_train_epochs'\?\)") as err:
        parse_args([write_config(tmp_path, num_train_epoch=2)])
    assert "args.json" in str(err.value)


def test_unknown_flag_is_an_error_with_suggestion():
    with pytest.raises(ConfigError, match=r"'--doc_strid' \(did you mean 'doc_stride'\?\)"):
        parse_args(["--train_file", "a.json", "--doc_strid", "64"])


def test_abbreviated_flag_is_not_silently_expanded():
    with pytest.raises(ConfigError, match="--num_train"):
        parse_args(["--train_file", "a.json", "--num_train", "3"])


def test_invalid_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="doc_stride"):
        parse_args(["--train_file", "a.json", "--max_seq_length", "128", "--doc_stride", "128"])
    with pytest.raises(ConfigError, match="No data given"):
        parse_args(["--output_dir", str(tmp_path)])
    bad = tmp_path / "broken.json"
    bad.write_text('{"train_file": "a.json",}', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        parse_args([str(bad)])


def test_help_opens_with_a_short_usage_then_lists_every_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_qa.main(["-h"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith("usage: python run_qa.py [config.json]") and len(usage.splitlines()) <= 2
    assert description.startswith("Train and evaluate an extractive question-answering model.")
    for heading in ("model:", "data:", "lora:", "training (transformers.TrainingArguments, and the hyperparameter search):"):
        assert heading in text
    for option in ("--model_name_or_path", "--doc_stride", "--null_score_diff_threshold", "--lora_r", "--learning_rate",
                   "--hp_search_trials"):
        assert option in text


def test_run_qa_reports_config_errors_without_traceback(tmp_path):
    output = run_qa_in_process(write_config(tmp_path, bogus_option=1), expect=2)
    assert "bogus_option" in output and "Traceback" not in output


def test_max_answer_length_accepts_a_number_or_auto_from_json_and_command_line(tmp_path):
    assert parse_args([write_config(tmp_path, max_answer_length=50)])[1].max_answer_length == 50
    assert parse_args([write_config(tmp_path, max_answer_length="50")])[1].max_answer_length == 50
    assert parse_args([write_config(tmp_path, max_answer_length="auto")])[1].max_answer_length == "auto"
    assert parse_args([write_config(tmp_path), "--max_answer_length", "auto"])[1].max_answer_length == "auto"
    assert parse_args([write_config(tmp_path)])[1].max_answer_length == 30
    with pytest.raises(ConfigError, match="max_answer_length must be positive"):
        parse_args([write_config(tmp_path, max_answer_length=0)])
    with pytest.raises(ConfigError, match="no training data is given"):
        parse_args(["--validation_file", "dev.json", "--max_answer_length", "auto", "--output_dir", str(tmp_path)])


def test_keep_answerless_windows_option(tmp_path):
    assert parse_args([write_config(tmp_path)])[1].keep_answerless_windows == 1.0
    assert parse_args([write_config(tmp_path, keep_answerless_windows=0.1)])[1].keep_answerless_windows == 0.1
    with pytest.raises(ConfigError, match="keep_answerless_windows"):
        parse_args([write_config(tmp_path), "--keep_answerless_windows", "0"])


def test_training_batches_are_random_by_default_and_length_grouping_is_opt_in():
    """Random batches stay the default: length grouping cost the mock demo 10.7 EM (bench/README.md)."""
    *_, training = parse_args(["--train_file", "t.json", "--output_dir", "/tmp/x"])
    assert training.train_sampling_strategy == "random"
    *_, training = parse_args(["--train_file", "t.json", "--output_dir", "/tmp/x", "--train_sampling_strategy",
                               "group_by_length"])
    assert training.train_sampling_strategy == "group_by_length"


def test_window_and_decoding_defaults_are_the_librarys(tmp_path):
    """One source of defaults: run_qa.py's options are QASettings' and ColumnMap's."""
    from dataclasses import asdict

    from slmqa.data.columns import ColumnMap
    from slmqa.settings import DEFAULTS

    _, data, _, _ = parse_args([write_config(tmp_path)])
    assert data.settings() == DEFAULTS and asdict(DEFAULTS)["max_answer_length"] == data.max_answer_length
    assert data.columns() == ColumnMap()
    _, mapped, _, _ = parse_args([write_config(tmp_path), "--question_column", "query", "--answer_start_column", "s",
                                  "--max_seq_length", "256", "--version_2_with_negative"])
    assert mapped.columns() == ColumnMap(question="query", answer_start="s")
    assert mapped.settings().max_seq_length == 256 and mapped.settings().version_2_with_negative
    _, auto, _, _ = parse_args([write_config(tmp_path, max_answer_length="auto")])
    assert auto.settings().max_answer_length == DEFAULTS.max_answer_length  # stands in until resolved from the data


def test_strict_means_no_defect_is_tolerated(tmp_path):
    assert parse_args([write_config(tmp_path)])[1].max_bad_fraction == 0.01
    assert parse_args([write_config(tmp_path), "--strict"])[1].max_bad_fraction == 0.0


# --------------------------------------------------------------------------- precision


def test_auto_precision_trains_in_bf16_on_a_cpu_with_bfloat16_units(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setenv("SLMQA_CPU_FLAGS", "avx2 avx512_bf16")
    model, _, _, training = parse_args(["--train_file", "a.json"])
    assert model.precision == "auto" and training.bf16 and training.use_cpu and training.mixed_precision == "bf16"
    assert model.precision_choice.precision == "bf16" and "avx512_bf16" in model.precision_choice.why
    model, _, _, training = parse_args(["--train_file", "a.json", "--precision", "fp32"])
    assert not training.bf16 and model.precision_choice.why == "asked for"


def test_auto_precision_is_fp32_without_them_and_flags_win(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    model, _, _, training = parse_args(["--train_file", "a.json"])  # conftest: a CPU without bfloat16 units
    assert not training.bf16 and not training.use_cpu and model.precision_choice.precision == "fp32"
    assert "no bfloat16 instructions" in model.precision_choice.why
    model, _, _, training = parse_args(["--train_file", "a.json", "--bf16", "true", "--use_cpu", "true"])
    assert training.bf16 and (model.precision_choice.precision, model.precision_choice.why) == ("bf16", "--bf16")


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp32", "--bf16", "true", "--use_cpu", "true"], "--precision fp32 contradicts --bf16"),
    (["--precision", "half"], "--precision must be one of auto, fp32, bf16; got 'half'"),
])
def test_contradicting_precisions_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(["--train_file", "a.json", *argv])
