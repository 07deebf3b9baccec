"""slmqa.settings: one frozen settings object, resolved setting by setting: flag, qa_settings.json, run_args.json, default."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from slmqa.errors import ConfigError
from slmqa.settings import (
    DEFAULTS,
    SETTING_NAMES,
    Calibration,
    QASettings,
    model_calibration,
    model_settings,
    resolve_settings,
    settings_record,
)

NO_FLAGS = dict.fromkeys(SETTING_NAMES)


def asdict(settings: QASettings) -> dict:
    """The settings a flag may set (the calibration is compared on its own)."""
    return {name: getattr(settings, name) for name in SETTING_NAMES}



def write_json(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def qa_settings(**values):
    settings = {"max_seq_length": 192, "doc_stride": 48, "max_answer_length": 50, "n_best_size": 7,
                "version_2_with_negative": True, "null_score_diff_threshold": -1.5,
                "threshold_source": "best_f1_thresh on the validation split"}
    return {**settings, **values}


def resolve(flags, model_dir):
    """(values as a dict, sources), to compare with plain dicts."""
    settings, sources = resolve_settings(flags, model_dir)
    return asdict(settings), sources


def test_decoding_settings_defaults_match_run_qa(tmp_path):
    from args import DataTrainingArguments

    values, sources = resolve(NO_FLAGS, str(tmp_path))
    assert values == asdict(DEFAULTS)
    reference = DataTrainingArguments(validation_file="x")
    assert values == {name: getattr(reference, name) for name in values}
    assert set(sources.values()) == {"default"}
    # A Hub id is no directory: nothing to read, no error.
    assert resolve(NO_FLAGS, "sentence-transformers/all-MiniLM-L6-v2")[0] == asdict(DEFAULTS)
    assert resolve(NO_FLAGS, None)[0] == asdict(DEFAULTS)


def test_decoding_settings_resolution_order(tmp_path):
    run_args = {"ModelArguments": {"model_name_or_path": "m"},
                "DataTrainingArguments": {"train_file": "t.json", "max_seq_length": 256, "doc_stride": 64,
                                          "max_answer_length": 40, "version_2_with_negative": False,
                                          "null_score_diff_threshold": 0.0}}  # n_best_size missing
    write_json(tmp_path / "run_args.json", run_args)
    values, sources = resolve(NO_FLAGS, str(tmp_path))
    assert values == {**asdict(DEFAULTS), "max_seq_length": 256, "doc_stride": 64, "max_answer_length": 40}
    assert sources == {**dict.fromkeys(NO_FLAGS, "run_args.json"), "n_best_size": "default"}

    # qa_settings.json beats run_args.json; its threshold_source is named with the threshold.
    write_json(tmp_path / "qa_settings.json", qa_settings())
    values, sources = resolve(NO_FLAGS, str(tmp_path))
    assert values == {k: v for k, v in qa_settings().items() if k != "threshold_source"}
    assert sources == {**dict.fromkeys(NO_FLAGS, "qa_settings.json"),
                       "null_score_diff_threshold": "qa_settings.json: best_f1_thresh on the validation split"}

    # An explicit flag beats both, also a False that switches v2 off and a 0.0 threshold.
    flags = {**NO_FLAGS, "max_seq_length": 128, "version_2_with_negative": False, "null_score_diff_threshold": 0.0}
    values, sources = resolve(flags, str(tmp_path))
    assert (values["max_seq_length"], values["version_2_with_negative"], values["null_score_diff_threshold"]) == (
        128, False, 0.0)
    assert [sources[k] for k in ("max_seq_length", "version_2_with_negative", "null_score_diff_threshold")] == [
        "flag"] * 3
    assert (values["doc_stride"], sources["doc_stride"]) == (48, "qa_settings.json")

    # A setting missing from qa_settings.json falls through to run_args.json, then to the default.
    write_json(tmp_path / "qa_settings.json", {"null_score_diff_threshold": 2})
    values, sources = resolve(NO_FLAGS, str(tmp_path))
    assert values["null_score_diff_threshold"] == 2.0 and isinstance(values["null_score_diff_threshold"], float)
    assert sources["null_score_diff_threshold"] == "qa_settings.json"
    assert (values["max_seq_length"], sources["max_seq_length"]) == (256, "run_args.json")
    assert sources["n_best_size"] == "default"


def test_decoding_settings_conflict_names_sources(tmp_path):
    write_json(tmp_path / "run_args.json", {"DataTrainingArguments": {"doc_stride": 128}})
    with pytest.raises(ConfigError, match=r"doc_stride \(128, run_args.json\).*max_seq_length \(64, flag\)"):
        resolve({**NO_FLAGS, "max_seq_length": 64}, str(tmp_path))


@pytest.mark.parametrize(
    "name, content",
    [
        ("qa_settings.json", "{not json"),
        ("qa_settings.json", "[384, 128]"),
        ("qa_settings.json", {"max_seq_length": "384"}),
        ("qa_settings.json", {"version_2_with_negative": 1}),
        ("qa_settings.json", {"null_score_diff_threshold": True}),
        ("qa_settings.json", '{"null_score_diff_threshold": NaN}'),
        ("qa_settings.json", {"threshold_source": 3}),
        ("run_args.json", "{"),
        ("run_args.json", {"DataTrainingArguments": []}),
        ("run_args.json", {"DataTrainingArguments": {"doc_stride": 1.5}}),
    ],
)
def test_malformed_settings_file_is_config_error(tmp_path, name, content):
    path = write_json(tmp_path / name, content)
    with pytest.raises(ConfigError, match=str(path)):
        resolve(NO_FLAGS, str(tmp_path))


def test_a_models_own_settings_and_the_file_they_came_from(tmp_path):
    assert model_settings(tmp_path) == (DEFAULTS, "defaults")
    write_json(tmp_path / "run_args.json", {"DataTrainingArguments": {
        "max_seq_length": 256, "doc_stride": 96, "version_2_with_negative": True, "null_score_diff_threshold": 1}})
    settings, source = model_settings(tmp_path)
    assert (settings.max_seq_length, settings.doc_stride, settings.version_2_with_negative) == (256, 96, True)
    assert settings.null_score_diff_threshold == 1.0 and settings.n_best_size == 20 and source.endswith("run_args.json")
    write_json(tmp_path / "qa_settings.json", {"max_seq_length": 128, "doc_stride": 32})
    settings, source = model_settings(tmp_path)
    assert (settings.max_seq_length, settings.doc_stride, settings.max_answer_length) == (128, 32, 30)
    assert source.endswith("qa_settings.json")


def test_settings_are_frozen_and_checked():
    with pytest.raises(Exception):  # noqa: B017 - dataclasses.FrozenInstanceError
        DEFAULTS.max_seq_length = 10
    with pytest.raises(ConfigError, match="doc_stride .* must be smaller than max_seq_length"):
        QASettings(max_seq_length=64, doc_stride=64)
    with pytest.raises(ConfigError, match="n_best_size must be positive"):
        QASettings(n_best_size=0)
    with pytest.raises(ConfigError, match="version_2_with_negative has an invalid value 1"):
        QASettings(version_2_with_negative=1)


def test_the_record_after_training_keeps_the_best_threshold():
    v2 = QASettings(version_2_with_negative=True, null_score_diff_threshold=0.0)
    record = settings_record(v2, {"eval_best_f1_thresh": -2.5, "eval_best_f1": 60.0, "eval_f1": 55.0})
    assert record["null_score_diff_threshold"] == -2.5 and record["threshold_source"].startswith("eval_best_f1_thresh")
    assert QASettings(**{k: v for k, v in record.items() if k != "threshold_source"}).version_2_with_negative
    assert settings_record(DEFAULTS, {"eval_best_f1_thresh": -2.5})["null_score_diff_threshold"] == 0.0  # v1: no threshold


# ---------------------------------------------------------------- the answer calibration in qa_settings.json

TEMPERATURE = Calibration("temperature", temperature=2.0, fitted_on=120, ece_before=0.21, ece_after=0.04,
                          selection="5-fold cross-validated log-loss")


def test_calibration_round_trip_through_qa_settings_json(tmp_path):
    v2 = QASettings(version_2_with_negative=True)
    record = settings_record(v2, {"eval_best_f1_thresh": -2.5, "eval_best_f1": 60.0, "eval_f1": 55.0}, TEMPERATURE)
    assert record["calibration"] == {"method": "temperature", "temperature": 2.0, "fitted_on": 120,
                                     "ece_before": 0.21, "ece_after": 0.04, "selection": "5-fold cross-validated log-loss"}
    write_json(tmp_path / "qa_settings.json", record)
    settings, sources = resolve_settings({}, tmp_path)
    assert settings.calibration == TEMPERATURE and sources["calibration"] == "qa_settings.json"
    assert settings.null_score_diff_threshold == -2.5
    assert model_settings(tmp_path)[0].calibration == TEMPERATURE == model_calibration(tmp_path)
    assert "calibration=temperature (temperature 2)" in settings.describe()
    # Flags change the settings they name; the calibration stays the model's.
    assert resolve_settings({"n_best_size": 5}, tmp_path)[0].calibration == TEMPERATURE

    platt = Calibration("platt", slope=0.7, intercept=-0.3)
    write_json(tmp_path / "qa_settings.json", {**record, "calibration": platt.to_json()})
    assert model_calibration(tmp_path) == platt
    assert {"slope", "intercept"} <= set(platt.to_json()) and "temperature" not in platt.to_json()


def test_qa_settings_json_without_calibration_still_loads(tmp_path):
    old = {"max_seq_length": 384, "doc_stride": 128, "max_answer_length": 30, "n_best_size": 20,
           "version_2_with_negative": True, "null_score_diff_threshold": -11.6, "threshold_source": "eval_best_f1_thresh"}
    write_json(tmp_path / "qa_settings.json", old)
    settings, sources = resolve_settings({}, tmp_path)
    assert settings.calibration is None and "calibration" not in sources and settings.null_score_diff_threshold == -11.6
    assert "calibration" not in settings.describe() and model_calibration(tmp_path) is None
    assert "calibration" not in settings_record(settings, {})  # none fitted: none written
    write_json(tmp_path / "qa_settings.json", {**old, "calibration": None})
    assert model_calibration(tmp_path) is None
    assert model_calibration(None) is None and model_calibration("org/hub-model") is None


@pytest.mark.parametrize(
    "calibration, message",
    [
        ([1.5], "calibration must be a JSON object"),
        ({"method": "isotonic"}, "method must be one of"),
        ({"temperature": 2.0}, "calibration needs a method"),
        ({"method": "temperature"}, "needs temperature"),
        ({"method": "temperature", "temperature": 0}, "temperature must be positive"),
        ({"method": "temperature", "temperature": "2"}, "temperature must be a finite number"),
        ({"method": "platt", "slope": 1.0}, "needs intercept"),
        ({"method": "platt", "slope": 1.0, "intercept": True}, "intercept must be a finite number"),
        ({"method": "platt", "slope": -0.5, "intercept": 1.0}, "slope must be positive"),
        ({"method": "temperature", "temperature": 2.0, "ece_after": 1.5}, "ece_after must be a number in"),
        ({"method": "temperature", "temperature": 2.0, "fitted_on": -1}, "fitted_on must be a count"),
    ],
)
def test_a_malformed_calibration_is_a_config_error(tmp_path, calibration, message):
    path = write_json(tmp_path / "qa_settings.json", {"calibration": calibration})
    with pytest.raises(ConfigError, match=f"{path}.*{message}"):
        resolve_settings({}, tmp_path)


def test_unknown_calibration_keys_are_logged_not_refused(tmp_path, caplog):
    write_json(tmp_path / "qa_settings.json", {"calibration": {**TEMPERATURE.to_json(), "bins": 15}})
    with caplog.at_level(logging.WARNING, logger="slmqa.settings"):
        assert model_calibration(tmp_path) == TEMPERATURE
    assert "unknown calibration key(s) bins" in caplog.text


def test_settings_with_a_calibration_stay_frozen_and_hashable():
    settings = replace(DEFAULTS, calibration=TEMPERATURE)
    assert hash(settings) == hash(replace(DEFAULTS, calibration=TEMPERATURE)) and settings != DEFAULTS
    with pytest.raises(ConfigError, match="calibration has an invalid value"):
        QASettings(calibration={"method": "temperature"})
