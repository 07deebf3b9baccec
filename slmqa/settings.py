"""How a model reads and answers: one frozen settings object, and qa_settings.json that carries it.

A model is only used fairly with the windows, answer length and no-answer threshold it was
trained and tuned with. `QASettings` holds them; the windowing (data.windows), the reader
(serving) and span decoding (decoding.predictions) take it directly. It is built in one
place for every command: `resolve_settings` takes, setting by setting, an explicit flag,
else the model directory's qa_settings.json, else its run_args.json, else the defaults
below. Training writes qa_settings.json (`settings_record`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from slmqa.errors import ConfigError

logger = logging.getLogger(__name__)

QA_SETTINGS_FILE = "qa_settings.json"  # written after training, read by every command that uses a model
RUN_ARGS_FILE = "run_args.json"  # run_qa.py's record of every argument of the run
RUN_ARGS_GROUP = "DataTrainingArguments"  # where run_args.json keeps these settings
# A tokenizer without a real limit reports a huge model_max_length (1e30).
UNLIMITED_MODEL_LENGTH = 1_000_000


@dataclass(frozen=True)
class QASettings:
    """Window layout and span decoding: what must match between training, evaluation and serving."""

    max_seq_length: int = 384  # tokens per window (question + context + special tokens)
    doc_stride: int = 128  # tokens of overlap between consecutive windows of one context
    max_answer_length: int = 30  # longest answer span, in tokens
    n_best_size: int = 20  # candidate starts/ends kept per window, and answers kept per question
    version_2_with_negative: bool = False  # questions may have no answer (SQuAD v2)
    null_score_diff_threshold: float = 0.0  # v2: answer "" when null score - best span score exceeds it

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if not _type_ok(setting.name, value):
                raise ConfigError(f"{setting.name} has an invalid value {value!r}.")
        for name in ("max_seq_length", "max_answer_length", "n_best_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.doc_stride < 0:
            raise ConfigError(f"doc_stride must not be negative, got {self.doc_stride}.")
        check_window(self.max_seq_length, self.doc_stride)

    def describe(self, sources: dict[str, str] | None = None) -> str:
        """`name=value (source), ...` for the log."""
        return ", ".join(
            f"{name}={value}" + (f" ({sources[name]})" if sources and name in sources else "")
            for name, value in asdict(self).items()
        )


def _type_ok(name: str, value) -> bool:
    """JSON types per setting: a bool is not an int here, an int is a valid float."""
    if name == "version_2_with_negative":
        return isinstance(value, bool)
    if name == "null_score_diff_threshold":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def check_window(max_seq_length: int, doc_stride: int, sources: dict | None = None, model_limit: int | None = None) -> None:
    """The window rules wherever the lengths come from: the overlap must leave room to advance, and a
    window must fit the model (`model_limit`: the tokenizer's model_max_length, when known).

    `sources` names where each value came from (a flag, qa_settings.json, ...).
    """
    where = {name: f", {sources[name]}" for name in ("max_seq_length", "doc_stride") if name in sources} if sources else {}
    if doc_stride >= max_seq_length:
        raise ConfigError(
            f"doc_stride ({doc_stride}{where.get('doc_stride', '')}) must be smaller than "
            f"max_seq_length ({max_seq_length}{where.get('max_seq_length', '')})."
        )
    if model_limit and model_limit < UNLIMITED_MODEL_LENGTH and max_seq_length > model_limit:
        raise ConfigError(f"max_seq_length={max_seq_length} exceeds the model's limit of {model_limit} tokens.")


SETTING_NAMES = tuple(f.name for f in fields(QASettings))
DEFAULTS = QASettings()


def question_token_budget(tokenizer, settings: QASettings) -> int:
    """Longest question (in tokens) that still leaves more than doc_stride context tokens per window.

    The fast tokenizer refuses (with a Rust panic, not an exception) to window a pair whose
    context share is not strictly longer than the stride; the share is what max_seq_length
    leaves after the question and the pair's special tokens, which differ by model:
    3 for BERT ([CLS] q [SEP] c [SEP]), 4 for RoBERTa/XLM-R (<s> q </s></s> c </s>).
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    return settings.max_seq_length - settings.doc_stride - specials - 1


# ---------------------------------------------------------------- qa_settings.json


def settings_record(settings: QASettings, results: dict) -> dict:
    """qa_settings.json's content after training, with the threshold it is best used at.

    For SQuAD v2 the no-answer threshold is the one that scored best on the validation split
    (eval_best_f1_thresh) when there was an evaluation, else the one the run used.
    """
    threshold = settings.null_score_diff_threshold
    source = "null_score_diff_threshold of the training run"
    best = results.get("eval_best_f1_thresh")
    if settings.version_2_with_negative and isinstance(best, (int, float)):
        threshold = float(best)
        source = (
            f"eval_best_f1_thresh: best F1 {results['eval_best_f1']:.2f} on the validation split "
            f"(F1 {results['eval_f1']:.2f} at the threshold in use, {settings.null_score_diff_threshold})"
        )
    return {**asdict(replace(settings, null_score_diff_threshold=threshold)), "threshold_source": source}


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


def _checked(values: dict, path: Path, where: str = "") -> dict:
    """The settings in `values`, each checked for its JSON type (a threshold becomes a float)."""
    found = {}
    for name in SETTING_NAMES:
        if name not in values:
            continue
        if not _type_ok(name, values[name]):
            raise ConfigError(f"{path}: {where}{name} has an invalid value {values[name]!r}.")
        found[name] = float(values[name]) if name == "null_score_diff_threshold" else values[name]
    return found


def read_qa_settings(model_dir: Path) -> tuple[dict, str | None]:
    """Settings from the model's qa_settings.json (absent: none), and its threshold_source.

    Unknown keys are logged, not refused, so that a newer version can add fields.
    """
    path = model_dir / QA_SETTINGS_FILE
    if not path.is_file():
        return {}, None
    content = _read_json_object(path)
    unknown = sorted(set(content) - set(SETTING_NAMES) - {"threshold_source"})
    if unknown:
        logger.warning("%s: ignoring unknown key(s) %s", path, ", ".join(unknown))
    threshold_source = content.get("threshold_source")
    if threshold_source is not None and not isinstance(threshold_source, str):
        raise ConfigError(f"{path}: threshold_source must be a string, got {threshold_source!r}.")
    return _checked(content, path), threshold_source


def read_run_args_settings(model_dir: Path) -> dict:
    """Settings from the data group of the model's run_args.json (absent: none)."""
    path = model_dir / RUN_ARGS_FILE
    if not path.is_file():
        return {}
    group = _read_json_object(path).get(RUN_ARGS_GROUP, {})
    if not isinstance(group, dict):
        raise ConfigError(f"{path}: {RUN_ARGS_GROUP} must be a JSON object, got {type(group).__name__}.")
    return _checked(group, path, f"{RUN_ARGS_GROUP}.")


def resolve_settings(flags: dict, model_dir: str | Path | None) -> tuple[QASettings, dict[str, str]]:
    """(settings, where each came from), resolved setting by setting.

    Order: explicit flag (not None) > the model directory's qa_settings.json > its
    run_args.json > the defaults. A Hub id (not a directory) carries no such files and gets
    the defaults.
    """
    qa_settings, threshold_source, run_args = {}, None, {}
    if model_dir is not None and Path(model_dir).is_dir():
        qa_settings, threshold_source = read_qa_settings(Path(model_dir))
        run_args = read_run_args_settings(Path(model_dir))
    layers = [
        ("flag", {k: v for k, v in flags.items() if k in SETTING_NAMES and v is not None}),
        (QA_SETTINGS_FILE, qa_settings),
        (RUN_ARGS_FILE, run_args),
        ("default", asdict(DEFAULTS)),
    ]
    values, sources = {}, {}
    for name in SETTING_NAMES:
        source, layer = next((source, layer) for source, layer in layers if name in layer)
        values[name], sources[name] = layer[name], source
    if sources["null_score_diff_threshold"] == QA_SETTINGS_FILE and threshold_source:
        sources["null_score_diff_threshold"] += f": {threshold_source}"
    check_window(values["max_seq_length"], values["doc_stride"], sources)
    return QASettings(**values), sources


def model_settings(model_dir: str | Path) -> tuple[QASettings, str]:
    """A model's own settings (no flags) and the most specific file they came from ("defaults" if none)."""
    settings, sources = resolve_settings({}, model_dir)
    used = {source.split(":")[0] for source in sources.values()}
    source = next((name for name in (QA_SETTINGS_FILE, RUN_ARGS_FILE) if name in used), None)
    return settings, str(Path(model_dir) / source) if source else "defaults"
