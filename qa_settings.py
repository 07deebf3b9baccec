"""qa_settings.json: what using a trained model needs besides its weights, written and read back.

Owns the decoding settings (windows, answer length, n-best size, v2 mode, no-answer
threshold): `inference_settings` writes them after training, `decoding_settings` resolves
them for prediction, one by one: an explicit flag, else the model directory's
qa_settings.json, else its run_args.json, else DataTrainingArguments' defaults.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from args import ConfigError, check_window, data_argument_defaults

logger = logging.getLogger("qa_predict")

# Window and decoding settings that must match how the model was trained and tuned.
DECODING_SETTINGS = (
    "max_seq_length",
    "doc_stride",
    "max_answer_length",
    "n_best_size",
    "version_2_with_negative",
    "null_score_diff_threshold",
)
QA_SETTINGS_FILE = "qa_settings.json"  # written after training (inference_settings), read by qa_predict.py
RUN_ARGS_FILE = "run_args.json"  # written by run_qa.py: every argument of the run


def inference_settings(data_args, results: dict) -> dict:
    """What using the trained model needs besides its weights; qa_predict.py reads it back.

    For SQuAD v2 the no-answer threshold is the one that scored best on the validation
    split (eval_best_f1_thresh) when there was an evaluation, else the one the run used.
    """
    threshold = data_args.null_score_diff_threshold
    source = "null_score_diff_threshold of the training run"
    best = results.get("eval_best_f1_thresh")
    if data_args.version_2_with_negative and isinstance(best, (int, float)):
        threshold = float(best)
        source = (
            f"eval_best_f1_thresh: best F1 {results['eval_best_f1']:.2f} on the validation split "
            f"(F1 {results['eval_f1']:.2f} at the threshold in use, {data_args.null_score_diff_threshold})"
        )
    return {
        "max_seq_length": data_args.max_seq_length,
        "doc_stride": data_args.doc_stride,
        "max_answer_length": data_args.max_answer_length,
        "n_best_size": data_args.n_best_size,
        "version_2_with_negative": data_args.version_2_with_negative,
        "null_score_diff_threshold": threshold,
        "threshold_source": source,
    }


def _setting_type_ok(name: str, value) -> bool:
    """JSON types per setting: bool is not an int here, an int is a valid float."""
    if name == "version_2_with_negative":
        return isinstance(value, bool)
    if name == "null_score_diff_threshold":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _read_json_object(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(content).__name__}.")
    return content


def _checked_settings(values: dict, path: Path, where: str = "") -> dict:
    """The decoding settings in `values`, each checked for its JSON type."""
    found = {}
    for name in DECODING_SETTINGS:
        if name not in values:
            continue
        if not _setting_type_ok(name, values[name]):
            raise ConfigError(f"{path}: {where}{name} has an invalid value {values[name]!r}.")
        found[name] = float(values[name]) if name == "null_score_diff_threshold" else values[name]
    return found


def read_qa_settings(model_dir: Path) -> tuple[dict, str | None]:
    """Settings from the model's qa_settings.json (absent: none), and its threshold_source.

    Unknown keys are logged, not refused, so that a newer run_qa.py can add fields.
    """
    path = model_dir / QA_SETTINGS_FILE
    if not path.is_file():
        return {}, None
    content = _read_json_object(path)
    unknown = sorted(set(content) - set(DECODING_SETTINGS) - {"threshold_source"})
    if unknown:
        logger.warning("%s: ignoring unknown key(s) %s", path, ", ".join(unknown))
    threshold_source = content.get("threshold_source")
    if threshold_source is not None and not isinstance(threshold_source, str):
        raise ConfigError(f"{path}: threshold_source must be a string, got {threshold_source!r}.")
    return _checked_settings(content, path), threshold_source


def read_run_args_settings(model_dir: Path) -> dict:
    """Settings from the "DataTrainingArguments" group of the model's run_args.json (absent: none)."""
    path = model_dir / RUN_ARGS_FILE
    if not path.is_file():
        return {}
    group = _read_json_object(path).get("DataTrainingArguments", {})
    if not isinstance(group, dict):
        raise ConfigError(f"{path}: DataTrainingArguments must be a JSON object, got {type(group).__name__}.")
    return _checked_settings(group, path, "DataTrainingArguments.")


def decoding_settings(flags: dict, model_dir: str | None) -> tuple[dict, dict]:
    """(values, sources) of the window and decoding settings, resolved per setting.

    Order: explicit flag (not None) > the model directory's qa_settings.json > its
    run_args.json > DataTrainingArguments' defaults. A model is only scored fairly with the
    windows, answer length and no-answer threshold it was trained and tuned with, so those
    are taken from the model unless the user overrides them. A Hub id (not a directory)
    carries no such files and gets the defaults.
    """
    defaults = {name: value for name, value in data_argument_defaults().items() if name in DECODING_SETTINGS}
    qa_settings, threshold_source, run_args = {}, None, {}
    if model_dir is not None and Path(model_dir).is_dir():
        qa_settings, threshold_source = read_qa_settings(Path(model_dir))
        run_args = read_run_args_settings(Path(model_dir))
    layers = [
        ("flag", {k: v for k, v in flags.items() if k in DECODING_SETTINGS and v is not None}),
        (QA_SETTINGS_FILE, qa_settings),
        (RUN_ARGS_FILE, run_args),
        ("default", defaults),
    ]
    values, sources = {}, {}
    for name in DECODING_SETTINGS:
        source, layer = next((source, layer) for source, layer in layers if name in layer)
        values[name], sources[name] = layer[name], source
    if sources["null_score_diff_threshold"] == QA_SETTINGS_FILE and threshold_source:
        sources["null_score_diff_threshold"] += f": {threshold_source}"
    check_window(values["max_seq_length"], values["doc_stride"], sources)
    return values, sources


def describe_settings(values: dict, sources: dict) -> str:
    return ", ".join(f"{name}={values[name]} ({sources[name]})" for name in DECODING_SETTINGS)


@dataclass(frozen=True)
class QASettings:
    """The resolved settings as one value, for the serving side; `source` names the most specific file used."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int = 30
    n_best_size: int = 20
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    source: str = "defaults"


def load_settings(model_dir: str | Path) -> QASettings:
    """The model's own settings (no flags): decoding_settings' order, as one QASettings."""
    values, sources = decoding_settings({}, str(model_dir))
    used = {source.split(":")[0] for source in sources.values()}
    source = next((name for name in (QA_SETTINGS_FILE, RUN_ARGS_FILE) if name in used), "defaults")
    return QASettings(**values, source=source if source == "defaults" else str(Path(model_dir) / source))
