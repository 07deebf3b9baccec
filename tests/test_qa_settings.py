"""qa_settings.py: qa_settings.json first, then run_args.json, then the pipeline's defaults."""

from __future__ import annotations

import json

from qa_settings import QASettings, load_settings


def test_defaults_when_the_model_records_nothing(tmp_path):
    settings = load_settings(tmp_path)
    assert settings == QASettings(source="defaults")


def test_run_args_data_group_is_used(tmp_path):
    (tmp_path / "run_args.json").write_text(json.dumps({"DataTrainingArguments": {
        "max_seq_length": 256, "doc_stride": 96, "version_2_with_negative": True, "null_score_diff_threshold": 1}}))
    settings = load_settings(tmp_path)
    assert (settings.max_seq_length, settings.doc_stride, settings.version_2_with_negative) == (256, 96, True)
    assert settings.null_score_diff_threshold == 1.0 and settings.n_best_size == 20
    assert settings.source.endswith("run_args.json")


def test_qa_settings_json_wins_key_by_key(tmp_path):
    (tmp_path / "run_args.json").write_text(json.dumps({"DataTrainingArguments": {"max_seq_length": 256, "n_best_size": 5}}))
    (tmp_path / "qa_settings.json").write_text(json.dumps({
        "max_seq_length": 128, "doc_stride": 32, "max_answer_length": 12,
        "version_2_with_negative": True, "null_score_diff_threshold": -1.5, "threshold_source": "eval best_f1_thresh"}))
    settings = load_settings(tmp_path)
    assert (settings.max_seq_length, settings.doc_stride, settings.max_answer_length) == (128, 32, 12)
    assert settings.n_best_size == 5 and settings.null_score_diff_threshold == -1.5  # n_best_size from run_args.json
    assert settings.source.endswith("qa_settings.json")


def test_bad_files_are_errors_naming_the_file(tmp_path):
    """The same rule as qa_predict.py: a server must not start on silently wrong settings."""
    import pytest

    from args import ConfigError

    (tmp_path / "qa_settings.json").write_text("{broken")
    with pytest.raises(ConfigError, match="qa_settings.json"):
        load_settings(tmp_path)
    (tmp_path / "qa_settings.json").write_text(json.dumps({"n_best_size": "many"}))
    with pytest.raises(ConfigError, match="n_best_size"):
        load_settings(tmp_path)
